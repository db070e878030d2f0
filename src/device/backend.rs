//! Hardware backends for the status LEDs and the display (edge code).
//!
//! Owns: the [`Leds`] and [`Display`] traits the driver writes to, the
//! [`Hardware`] trait that opens them (again on each retry), the `rppal`
//! GPIO backend, a small SSD1306 driver over `rppal` I2C, and [`NoHardware`]
//! for systems without either. Must not touch: the status model, layout or
//! timing (pure modules), and the mirror (`driver.rs`). The simulated board
//! is not a backend here: the driver always keeps LED states and the frame in
//! memory, and hardware is an extra output it may or may not have.

use super::display::Framebuffer;
use super::leds::LedLevels;

/// Errors from LED and display hardware. Each means "this output is not
/// there right now"; the driver logs it and carries on simulated.
#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    /// This build or system has no GPIO/I2C access at all.
    #[error("no GPIO or I2C on this system; LEDs and display are simulated")]
    Unsupported,
    /// GPIO could not be opened or a pin could not be claimed.
    #[error(
        "GPIO unavailable ({detail}); is this a Raspberry Pi and may this user open /dev/gpiomem?"
    )]
    Gpio { detail: String },
    /// The I2C bus could not be opened, or the display did not acknowledge.
    #[error("display not answering on I2C bus {bus} at address {address:#04x} ({detail}); check wiring and that I2C is enabled")]
    I2c {
        bus: u8,
        address: u16,
        detail: String,
    },
    /// The driver thread could not be started.
    #[error("could not start the device thread: {0}")]
    Thread(#[from] std::io::Error),
}

/// The three status LEDs.
pub trait Leds: Send {
    /// Lights (true) or darkens each LED; the backend applies the board's
    /// active level.
    fn set(&mut self, levels: LedLevels) -> Result<(), DeviceError>;
}

/// A 128x64 monochrome panel.
pub trait Display: Send {
    /// Shows the frame.
    fn flush(&mut self, frame: &Framebuffer) -> Result<(), DeviceError>;
    /// Blanks the panel before the appliance stops. Best effort.
    fn blank(&mut self) -> Result<(), DeviceError> {
        self.flush(&Framebuffer::new())
    }
}

/// Opens the LED and display hardware. The driver calls these at start and
/// again every retry interval while an output is missing.
pub trait Hardware: Send {
    fn open_leds(&mut self) -> Result<Box<dyn Leds>, DeviceError>;
    fn open_display(&mut self) -> Result<Box<dyn Display>, DeviceError>;
}

/// No hardware at all: both outputs stay simulated.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoHardware;

impl Hardware for NoHardware {
    fn open_leds(&mut self) -> Result<Box<dyn Leds>, DeviceError> {
        Err(DeviceError::Unsupported)
    }
    fn open_display(&mut self) -> Result<Box<dyn Display>, DeviceError> {
        Err(DeviceError::Unsupported)
    }
}

/// The hardware for a board profile: `rppal` GPIO and I2C on Linux,
/// [`NoHardware`] elsewhere.
pub fn hardware_for(profile: &super::board::BoardProfile) -> Box<dyn Hardware> {
    #[cfg(target_os = "linux")]
    {
        Box::new(rppal_backend::RppalHardware::new(profile.clone()))
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = profile;
        Box::new(NoHardware)
    }
}

/// SSD1306 commands for a 128x64 panel with the charge pump on (the common
/// 0.96" I2C modules), horizontal addressing so one frame is one stream.
pub const SSD1306_INIT: &[u8] = &[
    0xAE, // display off
    0xD5, 0x80, // clock divide ratio / oscillator frequency
    0xA8, 0x3F, // multiplex ratio: 64 rows
    0xD3, 0x00, // display offset 0
    0x40, // start line 0
    0x8D, 0x14, // charge pump on
    0x20, 0x00, // horizontal addressing mode
    0xA1, // column 127 mapped to SEG0 (not mirrored on these modules)
    0xC8, // COM scan from the bottom (not upside down)
    0xDA, 0x12, // COM pins: alternative configuration
    0x81, 0xCF, // contrast
    0xD9, 0xF1, // pre-charge period
    0xDB, 0x40, // VCOMH deselect level
    0xA4, // show RAM contents
    0xA6, // normal (not inverted)
    0xAF, // display on
];

/// Sets the window to the whole panel before a frame is written.
pub const SSD1306_WINDOW: &[u8] = &[0x21, 0, 127, 0x22, 0, 7];

/// The I2C control byte before a run of commands.
pub const SSD1306_COMMAND: u8 = 0x00;
/// The I2C control byte before a run of display RAM bytes.
pub const SSD1306_DATA: u8 = 0x40;

#[cfg(target_os = "linux")]
pub use rppal_backend::RppalHardware;

#[cfg(target_os = "linux")]
mod rppal_backend {
    use rppal::gpio::{Gpio, Level, OutputPin};
    use rppal::i2c::I2c;

    use super::{
        DeviceError, Display, Framebuffer, Hardware, LedLevels, Leds, SSD1306_COMMAND,
        SSD1306_DATA, SSD1306_INIT, SSD1306_WINDOW,
    };
    use crate::device::board::BoardProfile;
    use crate::device::display::WIDTH;

    /// GPIO and I2C through `rppal`, wired as the board profile says.
    pub struct RppalHardware {
        profile: BoardProfile,
    }

    impl RppalHardware {
        pub fn new(profile: BoardProfile) -> RppalHardware {
            RppalHardware { profile }
        }
    }

    impl Hardware for RppalHardware {
        fn open_leds(&mut self) -> Result<Box<dyn Leds>, DeviceError> {
            let gpio_error = |error: rppal::gpio::Error| DeviceError::Gpio {
                detail: error.to_string(),
            };
            let gpio = Gpio::new().map_err(gpio_error)?;
            let output = |pin: u8| -> Result<OutputPin, DeviceError> {
                // Start dark; resets to an input (dark) when dropped.
                let mut pin = gpio.get(pin).map_err(gpio_error)?.into_output();
                pin.write(level(false, self.profile.active_high));
                Ok(pin)
            };
            Ok(Box::new(GpioLeds {
                green: output(self.profile.green_pin)?,
                blue: output(self.profile.blue_pin)?,
                red: output(self.profile.red_pin)?,
                active_high: self.profile.active_high,
            }))
        }

        fn open_display(&mut self) -> Result<Box<dyn Display>, DeviceError> {
            let display = Ssd1306::open(self.profile.i2c_bus, self.profile.display_addr)?;
            Ok(Box::new(display))
        }
    }

    fn level(lit: bool, active_high: bool) -> Level {
        if lit == active_high {
            Level::High
        } else {
            Level::Low
        }
    }

    struct GpioLeds {
        green: OutputPin,
        blue: OutputPin,
        red: OutputPin,
        active_high: bool,
    }

    impl Leds for GpioLeds {
        fn set(&mut self, levels: LedLevels) -> Result<(), DeviceError> {
            // Writing an output pin is a register write; it cannot fail.
            self.green.write(level(levels.green, self.active_high));
            self.blue.write(level(levels.blue, self.active_high));
            self.red.write(level(levels.red, self.active_high));
            Ok(())
        }
    }

    /// A minimal SSD1306 driver: init sequence, then whole frames.
    struct Ssd1306 {
        i2c: I2c,
        bus: u8,
        address: u16,
    }

    impl Ssd1306 {
        fn open(bus: u8, address: u16) -> Result<Ssd1306, DeviceError> {
            let i2c_error = |error: rppal::i2c::Error| DeviceError::I2c {
                bus,
                address,
                detail: error.to_string(),
            };
            let mut i2c = I2c::with_bus(bus).map_err(i2c_error)?;
            i2c.set_slave_address(address).map_err(i2c_error)?;
            let mut display = Ssd1306 { i2c, bus, address };
            // A missing panel fails here: nobody acknowledges the address.
            display.write_control(SSD1306_COMMAND, SSD1306_INIT)?;
            Ok(display)
        }

        fn write_control(&mut self, control: u8, bytes: &[u8]) -> Result<(), DeviceError> {
            let mut message = Vec::with_capacity(bytes.len() + 1);
            message.push(control);
            message.extend_from_slice(bytes);
            match self.i2c.write(&message) {
                Ok(written) if written == message.len() => Ok(()),
                Ok(written) => {
                    Err(self.error(format!("short write: {written} of {} bytes", message.len())))
                }
                Err(error) => Err(self.error(error.to_string())),
            }
        }

        fn error(&self, detail: String) -> DeviceError {
            DeviceError::I2c {
                bus: self.bus,
                address: self.address,
                detail,
            }
        }
    }

    impl Display for Ssd1306 {
        fn flush(&mut self, frame: &Framebuffer) -> Result<(), DeviceError> {
            self.write_control(SSD1306_COMMAND, SSD1306_WINDOW)?;
            // One page (128 bytes) per transfer: small enough for any I2C adapter.
            for page in frame.as_bytes().chunks(WIDTH) {
                self.write_control(SSD1306_DATA, page)?;
            }
            Ok(())
        }

        fn blank(&mut self) -> Result<(), DeviceError> {
            self.flush(&Framebuffer::new())?;
            self.write_control(SSD1306_COMMAND, &[0xAE])
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::board::BoardProfile;

    #[test]
    fn no_hardware_refuses_both_outputs() {
        let mut hardware = NoHardware;
        assert!(matches!(
            hardware.open_leds(),
            Err(DeviceError::Unsupported)
        ));
        assert!(matches!(
            hardware.open_display(),
            Err(DeviceError::Unsupported)
        ));
    }

    /// On a machine without /dev/i2c-N (CI, a laptop) the real SSD1306
    /// backend must fail with an I2C error naming the bus and address, not
    /// panic. On a Pi with a panel attached this would succeed instead.
    #[cfg(target_os = "linux")]
    #[test]
    fn rppal_display_without_a_bus_is_an_error() {
        let mut profile = BoardProfile::by_name("pi4").expect("pi4 profile");
        profile.i2c_bus = 250; // no machine has /dev/i2c-250
        let mut hardware = hardware_for(&profile);
        match hardware.open_display() {
            Err(DeviceError::I2c { bus, address, .. }) => assert_eq!((bus, address), (250, 0x3C)),
            Err(other) => panic!("expected an I2C error, got {other}"),
            Ok(_) => panic!("an I2C bus 250 display opened"),
        }
    }
}
