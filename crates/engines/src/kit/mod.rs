//! What the engines share (decision 0017).
