//! The protocols the CLI knows, in one place: every command that takes
//! `--protocol` (or reads it from a cluster file) dispatches through
//! [`with_protocol`]. Adding a protocol: one line in [`PROTOCOLS`] and one arm
//! in [`with_protocol`]; the protocol itself maps the generic flags onto its
//! settings (`Protocol::apply_settings`) and says how many replicas it needs
//! ([`max_faults`]).

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

/// The most faults `P` tolerates with `n` replicas in `model`: the largest f
/// whose [`Protocol::replicas_for`] fits in n (0 if none does).
pub fn max_faults<P: quorate_core::Protocol>(n: usize, model: quorate_core::FaultModel) -> usize {
    (0..n).take_while(|f| P::replicas_for(*f, model) <= n).last().unwrap_or(0)
}

/// [`max_faults`] of the protocol called `name`.
pub fn max_faults_of(name: &str, n: usize, model: quorate_core::FaultModel) -> Result<usize, String> {
    struct MaxFaults(usize, quorate_core::FaultModel);
    impl WithProtocol for MaxFaults {
        type Output = usize;
        fn run<P: CliProtocol>(self) -> usize {
            max_faults::<P>(self.0, self.1)
        }
    }
    with_protocol(name, MaxFaults(n, model))
}
