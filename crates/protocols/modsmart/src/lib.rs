//! Mod-SMaRt.
