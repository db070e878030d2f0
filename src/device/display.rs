//! Display frames: the 128x64 1-bit framebuffer and the pure layout that draws
//! a [`DeviceStatus`] into it.
//!
//! Owns: [`Framebuffer`] (SSD1306 page layout, an `embedded-graphics`
//! `DrawTarget`), its PNG and ASCII-art encodings, the screen layout
//! ([`render`]) and the text fitting rules (Unicode names shortened by
//! grapheme with an ellipsis, glyphs the Latin-1 font lacks shown as '?').
//! Must not touch: I2C, the clock, files. `backend.rs` sends the bytes.
//!
//! Layout (6x10 font, 21 cells a line; y is the top of each row):
//!
//! ```text
//! y  0  web UI address ("http://" dropped; a 5x8 font when it is longer)
//! y 11  ───────────── rule
//! y 13  state: "All backed up" | "On this box only" | "On the USB disk only"
//!       | "Work pending" | "Uploading" | "Caching"
//!       or, inverted, "! Needs attention"
//! y 24  reason, lines 1..3 at y 24, 34, 44 (attention only)
//! y 25  archive name / "Backed up off-site." / "Not off-site yet." / "Not all backed up yet"
//!       or, idle on a USB disk, "Disk: <label>"
//! y 37  [progress bar.........]  42%, or "Not off-site yet." under the USB disk's label
//! y 54  "Queue 3"          "1.1 MiB/s" | "waiting" (no bytes moved lately, unfinished)
//! ```
//!
//! The certificate page (`fingerprint_page`): "HTTPS fingerprint", the
//! rule, then the SHA-256 in four lines of eight bytes (5x8 font).

use embedded_graphics::{
    mono_font::{iso_8859_1, MonoFont, MonoTextStyle, MonoTextStyleBuilder},
    pixelcolor::BinaryColor,
    prelude::*,
    primitives::{Line, PrimitiveStyle, Rectangle},
    text::{Baseline, Text},
};
use unicode_segmentation::UnicodeSegmentation;

use super::status::{Activity, DeviceStatus};
use crate::units::human_rate;

/// Width of the SSD1306 panel in pixels.
pub const WIDTH: usize = 128;
/// Height of the SSD1306 panel in pixels.
pub const HEIGHT: usize = 64;
/// Bytes of a frame: 8 pages of 128 columns, one byte per 8 vertical pixels.
pub const FRAME_BYTES: usize = WIDTH * HEIGHT / 8;

/// The ellipsis as it appears in fitted text; drawn as three dots in one cell
/// because the Latin-1 fonts have no glyph for it.
pub const ELLIPSIS: char = '…';

/// Errors of the display encodings.
#[derive(Debug, thiserror::Error)]
pub enum DisplayError {
    /// The PNG encoder refused the frame; a bug in the encoding, not in the input.
    #[error("could not encode the display frame as PNG: {0}")]
    Png(#[from] png::EncodingError),
}

/// A 128x64 monochrome frame in SSD1306 page layout: byte `page * 128 + x`
/// holds pixels `(x, page*8 ..= page*8+7)`, least significant bit on top.
/// That is the byte order the panel takes in horizontal addressing mode, so
/// the driver sends [`Framebuffer::as_bytes`] unchanged.
#[derive(Clone, PartialEq, Eq)]
pub struct Framebuffer {
    bytes: [u8; FRAME_BYTES],
}

impl Default for Framebuffer {
    fn default() -> Self {
        Framebuffer::new()
    }
}

impl std::fmt::Debug for Framebuffer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let lit: u32 = self.bytes.iter().map(|byte| byte.count_ones()).sum();
        write!(f, "Framebuffer {{ {WIDTH}x{HEIGHT}, {lit} pixels lit }}")
    }
}

impl Framebuffer {
    /// A blank (all dark) frame.
    pub fn new() -> Framebuffer {
        Framebuffer {
            bytes: [0; FRAME_BYTES],
        }
    }

    /// The frame in SSD1306 page layout.
    pub fn as_bytes(&self) -> &[u8; FRAME_BYTES] {
        &self.bytes
    }

    /// Whether pixel `(x, y)` is lit; false outside the panel.
    pub fn pixel(&self, x: usize, y: usize) -> bool {
        if x >= WIDTH || y >= HEIGHT {
            return false;
        }
        self.bytes[(y / 8) * WIDTH + x] & (1 << (y % 8)) != 0
    }

    /// Lights or clears pixel `(x, y)`; ignored outside the panel.
    pub fn set_pixel(&mut self, x: usize, y: usize, lit: bool) {
        if x >= WIDTH || y >= HEIGHT {
            return;
        }
        let index = (y / 8) * WIDTH + x;
        let bit = 1 << (y % 8);
        if lit {
            self.bytes[index] |= bit;
        } else {
            self.bytes[index] &= !bit;
        }
    }

    /// The frame as a 1-bit grayscale PNG, 128x64, lit pixels white (as the
    /// OLED shows them). This is `display.png` on the admin device page.
    pub fn to_png(&self) -> Result<Vec<u8>, DisplayError> {
        let mut rows = Vec::with_capacity(FRAME_BYTES);
        for y in 0..HEIGHT {
            for byte_x in 0..WIDTH / 8 {
                let mut packed = 0u8;
                for bit in 0..8 {
                    if self.pixel(byte_x * 8 + bit, y) {
                        packed |= 0x80 >> bit;
                    }
                }
                rows.push(packed);
            }
        }
        let mut out = Vec::new();
        // Dimensions are small constants; the casts cannot truncate.
        let mut encoder = png::Encoder::new(&mut out, WIDTH as u32, HEIGHT as u32);
        encoder.set_color(png::ColorType::Grayscale);
        encoder.set_depth(png::BitDepth::One);
        let mut writer = encoder.write_header()?;
        writer.write_image_data(&rows)?;
        writer.finish()?;
        Ok(out)
    }

    /// The frame as ASCII art: 64 lines of 128 characters, `#` lit, `.` dark,
    /// each line ending in '\n'. Used by the snapshot tests.
    pub fn to_ascii(&self) -> String {
        let mut out = String::with_capacity((WIDTH + 1) * HEIGHT);
        for y in 0..HEIGHT {
            for x in 0..WIDTH {
                out.push(if self.pixel(x, y) { '#' } else { '.' });
            }
            out.push('\n');
        }
        out
    }
}

impl OriginDimensions for Framebuffer {
    fn size(&self) -> Size {
        Size::new(WIDTH as u32, HEIGHT as u32)
    }
}

impl DrawTarget for Framebuffer {
    type Color = BinaryColor;
    type Error = core::convert::Infallible;

    fn draw_iter<I>(&mut self, pixels: I) -> Result<(), Self::Error>
    where
        I: IntoIterator<Item = Pixel<Self::Color>>,
    {
        for Pixel(point, color) in pixels {
            // Negative coordinates are off the panel; set_pixel drops the rest.
            if let (Ok(x), Ok(y)) = (usize::try_from(point.x), usize::try_from(point.y)) {
                self.set_pixel(x, y, color.is_on());
            }
        }
        Ok(())
    }
}

/// Cells (characters) a line holds in the main 6x10 font.
pub const LINE_CELLS: usize = WIDTH / 6;
/// Cells a line holds in the small 5x8 font (used for long addresses).
pub const SMALL_LINE_CELLS: usize = WIDTH / 5;

const FONT: &MonoFont<'static> = &iso_8859_1::FONT_6X10;
const SMALL_FONT: &MonoFont<'static> = &iso_8859_1::FONT_5X8;

const ROW_URL: i32 = 0;
const ROW_RULE: i32 = 11;
const ROW_STATE: i32 = 13;
const ROW_NAME: i32 = 25;
const ROW_BAR: i32 = 37;
const BAR_HEIGHT: u32 = 8;
const BAR_WIDTH: u32 = 100;
const ROW_REASON: [i32; 3] = [24, 34, 44];
const ROW_BOTTOM: i32 = 54;

/// Draws the status. Pure: the same status always gives the same frame.
pub fn render(status: &DeviceStatus) -> Framebuffer {
    if let Some(fingerprint) = &status.fingerprint_page {
        return render_fingerprint(fingerprint);
    }
    let mut frame = Framebuffer::new();
    let normal = MonoTextStyle::new(FONT, BinaryColor::On);

    draw_url(&mut frame, &status.web_url);
    draw_rule(&mut frame);

    if let (Activity::Updating, Some(update)) = (status.activity, &status.current) {
        draw_updating(&mut frame, update);
        return frame;
    }
    if let Some(attention) = &status.attention {
        draw(
            &mut frame,
            Rectangle::new(Point::new(0, ROW_STATE - 1), Size::new(WIDTH as u32, 11))
                .into_styled(PrimitiveStyle::with_fill(BinaryColor::On)),
        );
        let inverted = MonoTextStyleBuilder::new()
            .font(FONT)
            .text_color(BinaryColor::Off)
            .background_color(BinaryColor::On)
            .build();
        draw_text(&mut frame, "! Needs attention", 0, ROW_STATE, inverted);
        for (line, y) in wrap(&attention.reason, LINE_CELLS, ROW_REASON.len())
            .iter()
            .zip(ROW_REASON)
        {
            draw_text(&mut frame, line, 0, y, normal);
        }
    } else {
        let (idle_state, idle_lines) = idle_words(status);
        let state = match status.activity {
            Activity::Idle => idle_state,
            Activity::Pending => "Work pending",
            Activity::Uploading => "Uploading",
            Activity::Caching => "Caching",
            Activity::Updating => "Updating",
        };
        draw_text(&mut frame, state, 0, ROW_STATE, normal);
        match (&status.current, status.activity) {
            (Some(current), _) => {
                let name = fit(&current.archive_name, LINE_CELLS);
                draw_text(&mut frame, &name, 0, ROW_NAME, normal);
                draw_progress(&mut frame, current.percent);
            }
            (None, Activity::Idle) => {
                for (line, y) in idle_lines.iter().zip([ROW_NAME, ROW_BAR]) {
                    draw_text(&mut frame, line, 0, y, normal);
                }
            }
            (None, _) => draw_text(&mut frame, "Not all backed up yet", 0, ROW_NAME, normal),
        }
    }

    let queue = if status.queue_length == 0 {
        "Queue empty".to_string()
    } else {
        format!("Queue {}", status.queue_length)
    };
    draw_text(&mut frame, &queue, 0, ROW_BOTTOM, normal);
    if let Some(current) = &status.current {
        // A finished transfer (say a zero-byte archive) has no rate to show;
        // an unfinished one without a rate is waiting (a retry, the window).
        let rate = match (current.bytes_per_sec, current.percent) {
            (0, 100..) => None,
            // Between parts under a bandwidth limit, or before a retry: not "stalled".
            (0, _) => Some("waiting".to_string()),
            (rate, _) => Some(human_rate(rate)),
        };
        if let Some(rate) = rate {
            draw_right_aligned(&mut frame, &rate, ROW_BOTTOM, normal);
        }
    }
    frame
}

/// What an idle screen says about where the backups are: the state line,
/// and the lines under it, each fitted to [`LINE_CELLS`]. A USB disk is
/// named by its label (shortened to fit), as the web pages name it.
fn idle_words(status: &DeviceStatus) -> (&'static str, Vec<String>) {
    const PREFIX: &str = "Disk: ";
    match (status.on_box_only, &status.usb_disk) {
        (false, _) => ("All backed up", vec!["Backed up off-site.".to_string()]),
        (true, Some(label)) => (
            "On the USB disk only",
            vec![
                format!("{PREFIX}{}", fit(label, LINE_CELLS - PREFIX.len())),
                "Not off-site yet.".to_string(),
            ],
        ),
        (true, None) => ("On this box only", vec!["Not off-site yet.".to_string()]),
    }
}

/// A firmware update: "Updating to <version>", a warning and the share written.
fn draw_updating(frame: &mut Framebuffer, update: &super::status::CurrentTransfer) {
    let normal = MonoTextStyle::new(FONT, BinaryColor::On);
    let headline = fit(&format!("Updating to {}", update.archive_name), LINE_CELLS);
    draw_text(frame, &headline, 0, ROW_STATE, normal);
    draw_text(frame, "Do not unplug.", 0, ROW_NAME, normal);
    draw_progress(frame, update.percent);
    let after = if update.percent >= 100 {
        "Restarting..."
    } else {
        "Restarts when done"
    };
    draw_text(frame, after, 0, ROW_BOTTOM, normal);
}

/// The line under the address (or the title).
fn draw_rule(frame: &mut Framebuffer) {
    draw(
        frame,
        Line::new(
            Point::new(0, ROW_RULE),
            Point::new(WIDTH as i32 - 1, ROW_RULE),
        )
        .into_styled(PrimitiveStyle::with_stroke(BinaryColor::On, 1)),
    );
}

/// The certificate page: a title, the rule, and the SHA-256 fingerprint
/// ("AB:CD:..." as browsers show it) in four lines of eight bytes in the
/// small font, so a person can compare it with the browser's.
fn render_fingerprint(fingerprint: &str) -> Framebuffer {
    let mut frame = Framebuffer::new();
    let title = MonoTextStyle::new(FONT, BinaryColor::On);
    draw_text(&mut frame, "HTTPS fingerprint", 0, ROW_URL, title);
    draw_rule(&mut frame);
    let small = MonoTextStyle::new(SMALL_FONT, BinaryColor::On);
    let bytes: Vec<&str> = fingerprint.split(':').collect();
    for (line, y) in bytes.chunks(8).zip([15, 27, 39, 51]) {
        draw_text(
            &mut frame,
            &fit(&line.join(":"), SMALL_LINE_CELLS),
            0,
            y,
            small,
        );
    }
    frame
}

fn draw(frame: &mut Framebuffer, drawable: impl Drawable<Color = BinaryColor>) {
    // Drawing into a Framebuffer cannot fail (its error type is Infallible).
    let Ok(_) = drawable.draw(frame);
}

fn draw_url(frame: &mut Framebuffer, web_url: &str) {
    let shown = web_url.strip_prefix("http://").unwrap_or(web_url).trim();
    if shown.is_empty() {
        let style = MonoTextStyle::new(FONT, BinaryColor::On);
        draw_text(frame, "No network address", 0, ROW_URL, style);
        return;
    }
    if glyphs(shown).len() <= LINE_CELLS {
        draw_text(
            frame,
            &fit(shown, LINE_CELLS),
            0,
            ROW_URL,
            MonoTextStyle::new(FONT, BinaryColor::On),
        );
    } else {
        let style = MonoTextStyle::new(SMALL_FONT, BinaryColor::On);
        draw_text(frame, &fit(shown, SMALL_LINE_CELLS), 0, ROW_URL + 1, style);
    }
}

fn draw_progress(frame: &mut Framebuffer, percent: u8) {
    let percent = u32::from(percent.min(100));
    draw(
        frame,
        Rectangle::new(Point::new(0, ROW_BAR), Size::new(BAR_WIDTH, BAR_HEIGHT))
            .into_styled(PrimitiveStyle::with_stroke(BinaryColor::On, 1)),
    );
    let inner = BAR_WIDTH - 4;
    let filled = inner * percent / 100;
    if filled > 0 {
        draw(
            frame,
            Rectangle::new(
                Point::new(2, ROW_BAR + 2),
                Size::new(filled, BAR_HEIGHT - 4),
            )
            .into_styled(PrimitiveStyle::with_fill(BinaryColor::On)),
        );
    }
    let text = format!("{percent}%");
    let style = MonoTextStyle::new(FONT, BinaryColor::On);
    draw_right_aligned(frame, &text, ROW_BAR - 1, style);
}

fn draw_right_aligned(
    frame: &mut Framebuffer,
    text: &str,
    y: i32,
    style: MonoTextStyle<'_, BinaryColor>,
) {
    let cell = style.font.character_size.width + style.font.character_spacing;
    let cells = glyphs(text).len() as u32;
    let x = (WIDTH as u32).saturating_sub(cells * cell);
    draw_text(frame, text, x as i32, y, style);
}

/// Draws already-fitted text (only renderable characters and [`ELLIPSIS`])
/// with its top-left corner at `(x, y)`.
fn draw_text(
    frame: &mut Framebuffer,
    text: &str,
    x: i32,
    y: i32,
    style: MonoTextStyle<'_, BinaryColor>,
) {
    let font = style.font;
    let cell = (font.character_size.width + font.character_spacing) as i32;
    let mut cursor = x;
    for (index, segment) in text.split(ELLIPSIS).enumerate() {
        if index > 0 {
            // Three dots on the baseline, in one cell.
            if let Some(background) = style.background_color {
                draw(
                    frame,
                    Rectangle::new(
                        Point::new(cursor, y),
                        Size::new(cell as u32, font.character_size.height),
                    )
                    .into_styled(PrimitiveStyle::with_fill(background)),
                );
            }
            let color = style.text_color.unwrap_or(BinaryColor::On);
            let baseline = y + font.baseline as i32;
            for dot in [0, 2, 4] {
                draw(frame, Pixel(Point::new(cursor + dot, baseline), color));
            }
            cursor += cell;
        }
        if !segment.is_empty() {
            draw(
                frame,
                Text::with_baseline(segment, Point::new(cursor, y), style, Baseline::Top),
            );
            cursor += cell * segment.chars().count() as i32;
        }
    }
}

/// True for characters the Latin-1 fonts draw: printable ASCII and U+00A0..=U+00FF.
fn renderable(c: char) -> bool {
    matches!(c, ' '..='~' | '\u{a0}'..='\u{ff}')
}

/// Combining marks and variation selectors: drawn as nothing on top of a base
/// character the font has (an "e" plus combining acute shows as "e").
fn combining(c: char) -> bool {
    matches!(c,
        '\u{300}'..='\u{36f}'
        | '\u{1ab0}'..='\u{1aff}'
        | '\u{1dc0}'..='\u{1dff}'
        | '\u{20d0}'..='\u{20ff}'
        | '\u{fe00}'..='\u{fe0f}'
        | '\u{fe20}'..='\u{fe2f}')
}

/// One display cell per grapheme cluster: the character itself when the font
/// has it (combining marks dropped), [`ELLIPSIS`] for '…', '?' otherwise
/// (emoji, CJK, control characters, a family emoji of seven code points...).
pub fn glyphs(text: &str) -> Vec<char> {
    text.graphemes(true)
        .map(|grapheme| {
            let mut chars = grapheme.chars();
            match chars.next() {
                Some(ELLIPSIS) if chars.as_str().is_empty() => ELLIPSIS,
                Some(base) if renderable(base) && chars.all(combining) => base,
                _ => '?',
            }
        })
        .collect()
}

/// Fits `text` into `cells` display cells: each grapheme becomes one glyph
/// (see [`glyphs`]); when too long the middle gives way to one [`ELLIPSIS`],
/// keeping the start and a third of the room for the end (so a file's
/// extension and numbering stay visible). Never splits a grapheme.
pub fn fit(text: &str, cells: usize) -> String {
    let all = glyphs(text);
    if all.len() <= cells {
        return all.into_iter().collect();
    }
    if cells == 0 {
        return String::new();
    }
    let room = cells - 1;
    let tail = room / 3;
    let head = room - tail;
    let mut out: String = all[..head].iter().collect();
    out.push(ELLIPSIS);
    out.extend(&all[all.len() - tail..]);
    out
}

/// Word-wraps `text` into at most `max_lines` lines of `cells` glyphs. Words
/// longer than a line are broken; if text remains after the last line, that
/// line ends in [`ELLIPSIS`].
pub fn wrap(text: &str, cells: usize, max_lines: usize) -> Vec<String> {
    if cells == 0 || max_lines == 0 {
        return Vec::new();
    }
    let mut lines: Vec<Vec<char>> = Vec::new();
    let mut line: Vec<char> = Vec::new();
    for word in text.split_whitespace() {
        let mut word = glyphs(word);
        loop {
            let needed = if line.is_empty() {
                word.len()
            } else {
                line.len() + 1 + word.len()
            };
            if needed <= cells {
                if !line.is_empty() {
                    line.push(' ');
                }
                line.append(&mut word);
                break;
            }
            if line.is_empty() {
                // A word longer than a whole line: break it.
                let rest = word.split_off(cells);
                lines.push(word);
                word = rest;
            } else {
                lines.push(std::mem::take(&mut line));
            }
        }
    }
    if !line.is_empty() {
        lines.push(line);
    }
    if lines.len() > max_lines {
        lines.truncate(max_lines);
        if let Some(last) = lines.last_mut() {
            last.truncate(cells - 1);
            last.push(ELLIPSIS);
        }
    }
    lines
        .into_iter()
        .map(|line| line.into_iter().collect())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pixel_layout_is_ssd1306_pages() {
        let mut frame = Framebuffer::new();
        frame.set_pixel(0, 0, true);
        frame.set_pixel(5, 9, true);
        frame.set_pixel(127, 63, true);
        frame.set_pixel(128, 0, true); // off the panel: ignored
        let bytes = frame.as_bytes();
        assert_eq!(bytes[0], 0b0000_0001);
        assert_eq!(bytes[128 + 5], 0b0000_0010);
        assert_eq!(bytes[7 * 128 + 127], 0b1000_0000);
        assert_eq!(bytes.iter().map(|b| b.count_ones()).sum::<u32>(), 3);
        frame.set_pixel(5, 9, false);
        assert!(!frame.pixel(5, 9));
        assert!(frame.pixel(127, 63));
    }

    #[test]
    fn draw_target_drops_negative_and_outside_pixels() {
        let mut frame = Framebuffer::new();
        draw(&mut frame, Pixel(Point::new(-1, 3), BinaryColor::On));
        draw(&mut frame, Pixel(Point::new(3, 64), BinaryColor::On));
        draw(&mut frame, Pixel(Point::new(3, 4), BinaryColor::On));
        assert_eq!(frame.to_ascii().matches('#').count(), 1);
        assert!(frame.pixel(3, 4));
    }

    #[test]
    fn glyph_table() {
        let cases: &[(&str, &str)] = &[
            ("plain.txt", "plain.txt"),
            ("Café.jpg", "Café.jpg"),
            ("Cafe\u{301}.jpg", "Cafe.jpg"), // decomposed (macOS) accent
            ("日本", "??"),
            ("👨‍👩‍👧 trip", "? trip"), // one family emoji is one grapheme
            ("a\nb\tc", "a?b?c"),
            ("wait…", "wait…"),
            ("€5", "?5"),
            ("", ""),
        ];
        for (input, expected) in cases {
            assert_eq!(
                glyphs(input).into_iter().collect::<String>(),
                *expected,
                "{input:?}"
            );
        }
    }

    /// Where the backups are, on an idle screen: a USB disk is named by its
    /// label, shortened to the line.
    #[test]
    fn idle_words_name_the_usb_disk() {
        let not_off_site = "Not off-site yet.";
        let cases: &[(bool, Option<&str>, &str, &[&str])] = &[
            (false, None, "All backed up", &["Backed up off-site."]),
            (true, None, "On this box only", &[not_off_site]),
            (
                true,
                Some("BACKUP"),
                "On the USB disk only",
                &["Disk: BACKUP", not_off_site],
            ),
            (
                true,
                Some("Photos-Backup-2TB-WD-Elements"),
                "On the USB disk only",
                &["Disk: Photos-Bac…ents", not_off_site],
            ),
            (
                true,
                Some("Oma's 📸 \"Fotos\""),
                "On the USB disk only",
                &["Disk: Oma's ? \"Fotos\"", not_off_site],
            ),
            (
                true,
                Some("sda1"),
                "On the USB disk only",
                &["Disk: sda1", not_off_site],
            ),
        ];
        for &(on_box_only, usb_disk, state, lines) in cases {
            let status = DeviceStatus {
                on_box_only,
                usb_disk: usb_disk.map(str::to_string),
                ..DeviceStatus::starting("http://piarchive.local")
            };
            let (got_state, got_lines) = idle_words(&status);
            assert_eq!(got_state, state, "{usb_disk:?}");
            assert_eq!(got_lines, lines, "{usb_disk:?}");
            for line in std::iter::once(got_state.to_string()).chain(got_lines) {
                assert!(glyphs(&line).len() <= LINE_CELLS, "{line:?} fits the line");
            }
        }
    }

    #[test]
    fn fit_table() {
        let cases: &[(&str, usize, &str)] = &[
            ("short.mp4", 21, "short.mp4"),
            ("exactly-21-chars.abcd", 21, "exactly-21-chars.abcd"),
            (
                "a-name-that-is-too-long-2024.mp4",
                21,
                "a-name-that-is…24.mp4",
            ),
            ("abc", 1, "…"),
            ("abc", 0, ""),
        ];
        for (input, cells, expected) in cases {
            let got = fit(input, *cells);
            assert_eq!(got, *expected, "{input:?} in {cells}");
            assert!(got.chars().count() <= *cells);
        }
        let emoji = "😀".repeat(200);
        let fitted = fit(&emoji, 21);
        assert_eq!(fitted.chars().count(), 21);
        assert_eq!(fitted, format!("{}…{}", "?".repeat(14), "?".repeat(6)));
    }

    #[test]
    fn wrap_table() {
        let cases: &[(&str, usize, usize, &[&str])] = &[
            ("Remote unreachable.", 21, 3, &["Remote unreachable."]),
            (
                "1 archive failed verification. Disk nearly full: 1.3 GiB free.",
                21,
                3,
                &[
                    "1 archive failed",
                    "verification. Disk",
                    "nearly full: 1.3 GiB…",
                ],
            ),
            ("abcdefghij", 4, 3, &["abcd", "efgh", "ij"]),
            ("abcdefghijklmnop", 4, 3, &["abcd", "efgh", "ijk…"]),
            ("   ", 21, 3, &[]),
        ];
        for (text, cells, lines, expected) in cases {
            let got = wrap(text, *cells, *lines);
            assert_eq!(got, *expected, "{text:?}");
            assert!(got.iter().all(|line| line.chars().count() <= *cells));
        }
    }

    #[test]
    fn png_decodes_back_to_the_same_pixels() {
        let mut frame = Framebuffer::new();
        for (x, y) in [
            (0, 0),
            (1, 0),
            (7, 0),
            (8, 0),
            (127, 0),
            (64, 31),
            (0, 63),
            (127, 63),
        ] {
            frame.set_pixel(x, y, true);
        }
        let bytes = frame.to_png().expect("frame encodes");
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");

        let decoder = png::Decoder::new(std::io::Cursor::new(bytes));
        let mut reader = decoder.read_info().expect("PNG header reads");
        let mut buffer = vec![0; reader.output_buffer_size().expect("size is known")];
        let info = reader.next_frame(&mut buffer).expect("PNG frame reads");
        assert_eq!((info.width, info.height), (WIDTH as u32, HEIGHT as u32));
        assert_eq!(info.color_type, png::ColorType::Grayscale);
        assert_eq!(info.bit_depth, png::BitDepth::One);
        for y in 0..HEIGHT {
            for x in 0..WIDTH {
                let byte = buffer[y * info.line_size + x / 8];
                let lit = byte & (0x80 >> (x % 8)) != 0;
                assert_eq!(lit, frame.pixel(x, y), "pixel ({x}, {y})");
            }
        }
    }
}
