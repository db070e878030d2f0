//! piarchive: a home backup appliance for the Raspberry Pi.
//!
//! The crate map lives in ARCHITECTURE.md; each module opens with a `//!`
//! comment saying what it owns and what it must not touch.

pub mod firmware;
