//! The protocols the CLI knows, in one place: every command that takes
//! `--protocol` (or reads it from a cluster file) dispatches through
//! [`with_protocol`]. Adding a protocol: one line in [`PROTOCOLS`], one arm in
//! [`with_protocol`], and a [`CliProtocol`] impl in `sim.rs` mapping the
//! simulator's generic flags to its settings.

use crate::sim::CliProtocol;

/// Every protocol, by its command-line name.
pub const PROTOCOLS: &[&str] = &["mod-smart", "ezbft", "pbft", "dqbft", "destiny"];

/// Something to do with one protocol type.
pub trait WithProtocol {
    /// What it gives.
    type Output;
    /// Do it with protocol `P`.
    fn run<P: CliProtocol>(self) -> Self::Output;
}

/// Run `w` with the protocol called `name`.
pub fn with_protocol<W: WithProtocol>(name: &str, w: W) -> Result<W::Output, String> {
    match name {
        "mod-smart" => Ok(w.run::<quorate_modsmart::ModSmart>()),
        "ezbft" => Ok(w.run::<quorate_ezbft::Ezbft>()),
        "pbft" => Ok(w.run::<quorate_pbft::Pbft>()),
        "dqbft" => Ok(w.run::<quorate_dqbft::Dqbft>()),
        "destiny" => Ok(w.run::<quorate_dqbft::Destiny>()),
        other => Err(format!("unknown protocol '{other}' (known: {})", PROTOCOLS.join(", "))),
    }
}
