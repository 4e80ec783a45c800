//! What the engines share (decision 0017).

pub mod tally;
#[cfg(test)]
pub(crate) mod testnet;
