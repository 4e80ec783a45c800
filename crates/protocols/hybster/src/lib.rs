//! Linear Hybster (Arun and Ravindran, *Scalable Byzantine Fault Tolerance
//! via Partial Decentralization*, PVLDB 15, §4.2): a hybrid consensus
//! instance for n = 2f+1 replicas whose trusted ThreshSign subsystems
//! ([`quorate_threshsign`]) make equivocation impossible, with one collector
//! combining f+1 threshold shares per decision instead of all-to-all votes.
//!
//! [`engine`] is the instance as a sans-IO engine with the same contract as
//! `quorate_pbft::engine`; Destiny runs one per D-instance and one for its
//! O-instance.

#![warn(missing_docs)]

pub mod engine;
