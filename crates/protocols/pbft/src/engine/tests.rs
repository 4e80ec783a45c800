//! Machine-level tests of the engine.
