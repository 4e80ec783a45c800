//! Apps.
