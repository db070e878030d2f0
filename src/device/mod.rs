//! The device itself: status LEDs and a small OLED that tell a person at a
//! glance whether their files are safe and where to point the browser.
//!
//! Owns everything between "the engine's counts" and "pins and pixels":
//!
//! - [`status`] (pure): [`StatusInputs`] -> [`DeviceStatus`], the one model.
//! - [`leds`] (pure): [`DeviceStatus`] -> [`LedStates`] and blink timing.
//! - [`display`] (pure): [`DeviceStatus`] -> [`Framebuffer`] (128x64, 1 bit),
//!   PNG and ASCII encodings.
//! - [`board`]: the board profiles embedded from `board/*.toml`, detection
//!   from the device tree.
//! - [`backend`] (edge): `rppal` GPIO and an SSD1306 over `rppal` I2C.
//! - [`driver`] (edge): the thread that drives them, falls back to the
//!   simulated board (the in-memory [`DeviceMirror`]) and retries.
//!
//! Must not touch: the store, the engine or the web server. The caller
//! gathers [`StatusInputs`], sends statuses through [`StatusSender`] and
//! serves [`MirrorHandle`] on the admin device page. Pure modules never read
//! the clock; only `driver` does.

pub mod backend;
pub mod board;
pub mod display;
pub mod driver;
pub mod leds;
pub mod status;

#[cfg(test)]
mod tests;

pub use backend::{hardware_for, DeviceError, Display, Hardware, Leds, NoHardware};
pub use board::{BoardError, BoardProfile};
pub use display::{render, Framebuffer};
pub use driver::{
    DeviceDriver, DeviceMirror, DeviceReport, DriverOptions, Logger, MirrorHandle, Output,
    StatusSender,
};
pub use leds::{led_patterns, LedLevels, LedStates, Pattern};
pub use status::{
    compute_status, Activity, Attention, CurrentTransfer, DeviceStatus, StatusInputs,
};
