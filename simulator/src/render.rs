//! Receipts as images: what the paper would look like, as a PNG.
//!
//! [`render_bitmap`] lays a [`Receipt`] out on 80 mm paper at 203 dpi
//! ([`PAPER_WIDTH_DOTS`] dots wide) the way an Epson-like printer does, and
//! [`render_png`] encodes that as a 1-bit greyscale PNG.
//!
//! # Layout
//!
//! - Text uses font A cells of [`CELL_WIDTH_DOTS`] × [`CELL_HEIGHT_DOTS`], so 48 columns fit.
//!   Glyphs come from the 10×20 X11 fixed font shipped by `embedded-graphics`
//!   (ISO 8859-5 for Cyrillic, ISO 8859-1 for other Latin-1 signs such as `×`),
//!   placed in the cell with one dot of space left and two above, as printer fonts are.
//!   Characters in neither table print as `?`.
//! - Double width and height (`GS !`) scale each dot into a w × h block; bold doubles
//!   each dot one dot to the right, which is how printers emphasise. A line too long
//!   for the paper continues on the next row, as on paper.
//! - A text row advances by [`LINE_SPACING_DOTS`] (Epson's default of 30 dots), or by
//!   the character height if that is taller.
//! - Barcodes are drawn bar by bar (`barcoders` encodes EAN-13, UPC-A, EAN-8, CODE39,
//!   CODE93, ITF, CODABAR and CODE128) with the module width and height the host set,
//!   and the human-readable text above or below when `GS H` asked for it. GS1-128 is
//!   drawn as CODE128 without the FNC1, and CODE128 with an automatically chosen code
//!   set (the interpreter keeps the readable data, not the host's code-set switches):
//!   the bars may differ from the real printer's, the content does not.
//! - QR codes are drawn module by module (the `qrcode` crate) with the module size and
//!   error level the host set; no quiet zone is added, as printers add none.
//! - Raster images are drawn bit for bit (the `GS v 0` scale mode is ignored).
//! - Barcodes, QR codes and images are aligned like text. Anything that cannot be
//!   drawn (data the symbology refuses, a QR code too long) is printed as its
//!   bracketed text placeholder instead, so it is never silently missing.
//! - The image is cut at [`PAPER_HEIGHT_DOTS_MAX`]; [`Bitmap::truncated`] says so.

use std::convert::Infallible;

use embedded_graphics::mono_font::{iso_8859_1, iso_8859_5, mapping, MonoFont, MonoTextStyle};
use embedded_graphics::pixelcolor::BinaryColor;
use embedded_graphics::prelude::{DrawTarget, OriginDimensions, Point, Size};
use embedded_graphics::text::{Baseline, Text};
use embedded_graphics::{Drawable, Pixel};

use crate::printer_emu::{Align, Hri, Line, LineKind, QrEcLevel, Receipt};

/// 80 mm paper at 203 dpi: 72 mm printable.
pub const PAPER_WIDTH_DOTS: u32 = 576;
/// Font A character cell.
pub const CELL_WIDTH_DOTS: u32 = 12;
pub const CELL_HEIGHT_DOTS: u32 = 24;
/// Line feed amount (`ESC 2`, 1/6 inch on Epson's 180-dpi motion unit).
pub const LINE_SPACING_DOTS: u32 = 30;
/// White paper above the first line and below the last.
pub const MARGIN_DOTS: u32 = 16;
/// Longest image drawn, about 2 m of paper: bounds memory for a receipt of
/// thousands of empty lines or a huge raster.
pub const PAPER_HEIGHT_DOTS_MAX: u32 = 16_384;

/// Where the 10×20 glyph sits in its 12×24 cell.
const GLYPH_LEFT_DOTS: i32 = 1;
const GLYPH_TOP_DOTS: i32 = 2;

/// A black-and-white picture of a receipt, one `bool` per dot (true = black).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bitmap {
    width: u32,
    height: u32,
    dots: Vec<bool>,
    truncated: bool,
}

impl Bitmap {
    pub fn width(&self) -> u32 {
        self.width
    }

    pub fn height(&self) -> u32 {
        self.height
    }

    /// Whether the receipt was longer than [`PAPER_HEIGHT_DOTS_MAX`] and cut there.
    pub fn truncated(&self) -> bool {
        self.truncated
    }

    /// Whether the dot at `(x, y)` is black; dots outside the paper are white.
    pub fn is_black(&self, x: u32, y: u32) -> bool {
        x < self.width && y < self.height && self.dots[self.index(x, y)]
    }

    fn index(&self, x: u32, y: u32) -> usize {
        y as usize * self.width as usize + x as usize
    }

    /// Adds `rows` white rows at the bottom; returns the first one's y, or `None` (and
    /// marks the bitmap truncated) if they would not fit under the height cap.
    fn grow(&mut self, rows: u32) -> Option<u32> {
        let top = self.height;
        match top.checked_add(rows) {
            Some(height) if height <= PAPER_HEIGHT_DOTS_MAX => {
                self.height = height;
                self.dots.resize(self.index(0, height), false);
                Some(top)
            }
            _ => {
                self.truncated = true;
                None
            }
        }
    }

    /// Blackens a `w` × `h` block; the part off the paper is dropped.
    fn fill(&mut self, x: u32, y: u32, w: u32, h: u32) {
        for yy in y..y.saturating_add(h).min(self.height) {
            for xx in x..x.saturating_add(w).min(self.width) {
                let i = self.index(xx, yy);
                self.dots[i] = true;
            }
        }
    }
}

/// The receipt as a picture. See the module documentation for the layout.
pub fn render_bitmap(receipt: &Receipt) -> Bitmap {
    let mut bitmap = Bitmap { width: PAPER_WIDTH_DOTS, height: 0, dots: Vec::new(), truncated: false };
    let _ = bitmap.grow(MARGIN_DOTS);
    for line in &receipt.lines {
        if bitmap.truncated {
            break;
        }
        match &line.kind {
            LineKind::Text => draw_text(&mut bitmap, &line.text, line),
            LineKind::Barcode { symbology, data, module_dots, height_dots, hri } => {
                match barcode_modules(symbology, data) {
                    Some(modules) => {
                        let bars = Bars { modules: &modules, module_dots: *module_dots, height_dots: *height_dots };
                        draw_barcode(&mut bitmap, line, bars, data, *hri)
                    }
                    None => draw_text(&mut bitmap, &line.rendered(), line),
                }
            }
            LineKind::Qr { data, module_dots, ec_level } => {
                if !draw_qr(&mut bitmap, line, data, *module_dots, *ec_level) {
                    draw_text(&mut bitmap, &line.rendered(), line);
                }
            }
            LineKind::Image { width_dots, height_dots, bits } => {
                draw_image(&mut bitmap, line.align, *width_dots, *height_dots, bits)
            }
        }
    }
    let _ = bitmap.grow(MARGIN_DOTS);
    bitmap
}

/// The receipt as a 1-bit greyscale PNG.
pub fn render_png(receipt: &Receipt) -> Vec<u8> {
    encode_png(&render_bitmap(receipt))
}

/// Encodes a bitmap as a 1-bit greyscale PNG (0 = black, as PNG greyscale has it).
pub fn encode_png(bitmap: &Bitmap) -> Vec<u8> {
    let row_bytes = bitmap.width.div_ceil(8) as usize;
    let mut packed = vec![0u8; row_bytes * bitmap.height as usize];
    for y in 0..bitmap.height {
        for x in 0..bitmap.width {
            if !bitmap.is_black(x, y) {
                packed[y as usize * row_bytes + x as usize / 8] |= 0x80 >> (x % 8);
            }
        }
    }
    let mut png = Vec::new();
    let mut encoder = png::Encoder::new(&mut png, bitmap.width, bitmap.height);
    encoder.set_color(png::ColorType::Grayscale);
    encoder.set_depth(png::BitDepth::One);
    // Writing a well-formed image into memory cannot fail: the dimensions are non-zero
    // (the margins) and the data length matches them by construction.
    let mut writer = encoder.write_header().expect("PNG header");
    writer.write_image_data(&packed).expect("PNG data matches its header");
    writer.finish().expect("PNG end");
    png
}

fn align_left(align: Align, used_dots: u32) -> u32 {
    let slack = PAPER_WIDTH_DOTS.saturating_sub(used_dots);
    match align {
        Align::Left => 0,
        Align::Centre => slack / 2,
        Align::Right => slack,
    }
}

/// One character cell at 1×, drawn into by `embedded-graphics`.
struct Cell([[bool; CELL_WIDTH_DOTS as usize]; CELL_HEIGHT_DOTS as usize]);

impl OriginDimensions for Cell {
    fn size(&self) -> Size {
        Size::new(CELL_WIDTH_DOTS, CELL_HEIGHT_DOTS)
    }
}

impl DrawTarget for Cell {
    type Color = BinaryColor;
    type Error = Infallible;

    fn draw_iter<I>(&mut self, pixels: I) -> Result<(), Self::Error>
    where
        I: IntoIterator<Item = Pixel<Self::Color>>,
    {
        for Pixel(p, color) in pixels {
            let (Ok(x), Ok(y)) = (usize::try_from(p.x), usize::try_from(p.y)) else { continue };
            if color == BinaryColor::On && x < CELL_WIDTH_DOTS as usize && y < CELL_HEIGHT_DOTS as usize {
                self.0[y][x] = true;
            }
        }
        Ok(())
    }
}

/// The font table that has `c`, and the character to draw.
fn font_for(c: char) -> (&'static MonoFont<'static>, char) {
    if mapping::ISO_8859_5.contains(c) {
        (&iso_8859_5::FONT_10X20, c)
    } else if mapping::ISO_8859_1.contains(c) {
        (&iso_8859_1::FONT_10X20, c)
    } else {
        (&iso_8859_5::FONT_10X20, '?')
    }
}

fn glyph(c: char, bold: bool) -> Cell {
    let mut cell = Cell([[false; CELL_WIDTH_DOTS as usize]; CELL_HEIGHT_DOTS as usize]);
    let (font, c) = font_for(c);
    let mut utf8 = [0u8; 4];
    let style = MonoTextStyle::new(font, BinaryColor::On);
    let origin = Point::new(GLYPH_LEFT_DOTS, GLYPH_TOP_DOTS);
    let Ok(_) = Text::with_baseline(c.encode_utf8(&mut utf8), origin, style, Baseline::Top).draw(&mut cell);
    if bold {
        for row in &mut cell.0 {
            for x in (1..row.len()).rev() {
                row[x] |= row[x - 1];
            }
        }
    }
    cell
}

fn draw_text(bitmap: &mut Bitmap, text: &str, line: &Line) {
    let (w, h) = (u32::from(line.width.max(1)), u32::from(line.height.max(1)));
    let (cell_w, cell_h) = (CELL_WIDTH_DOTS * w, CELL_HEIGHT_DOTS * h);
    let columns = (PAPER_WIDTH_DOTS / cell_w).max(1) as usize;
    let chars: Vec<char> = text.chars().collect();
    // An empty line still feeds paper.
    let rows: Vec<&[char]> = if chars.is_empty() { vec![&[]] } else { chars.chunks(columns).collect() };
    for row in rows {
        let Some(top) = bitmap.grow(cell_h.max(LINE_SPACING_DOTS)) else { return };
        let left = align_left(line.align, row.len() as u32 * cell_w);
        for (i, &c) in row.iter().enumerate() {
            let cell = glyph(c, line.bold);
            let x0 = left + i as u32 * cell_w;
            for (gy, dots) in cell.0.iter().enumerate() {
                for (gx, &black) in dots.iter().enumerate() {
                    if black {
                        bitmap.fill(x0 + gx as u32 * w, top + gy as u32 * h, w, h);
                    }
                }
            }
        }
    }
}

/// A 1D symbol's modules, 1 = bar, or `None` if the symbology refuses the data.
fn barcode_modules(symbology: &str, data: &str) -> Option<Vec<u8>> {
    use barcoders::sym::{codabar::Codabar, code128::Code128, code39::Code39, code93::Code93};
    use barcoders::sym::{ean13::EAN13, ean8::EAN8, tf::TF};
    let digits = data.bytes().all(|b| b.is_ascii_digit());
    let modules = match symbology {
        "EAN-13" if digits && matches!(data.len(), 12 | 13) => EAN13::new(data).ok()?.encode(),
        "UPC-A" if digits && matches!(data.len(), 11 | 12) => EAN13::new(format!("0{data}")).ok()?.encode(),
        "EAN-8" if digits && matches!(data.len(), 7 | 8) => EAN8::new(data).ok()?.encode(),
        "CODE39" => Code39::new(data).ok()?.encode(),
        "CODE93" => Code93::new(data).ok()?.encode(),
        "ITF" if digits => TF::interleaved(data).ok()?.encode(),
        "CODABAR" => Codabar::new(data).ok()?.encode(),
        "CODE128" | "GS1-128" if !data.is_empty() => {
            // Code set C packs digit pairs; B covers printable ASCII.
            let set = if digits && data.len() % 2 == 0 { 'Ć' } else { 'Ɓ' };
            Code128::new(format!("{set}{data}")).ok()?.encode()
        }
        _ => return None,
    };
    Some(modules)
}

struct Bars<'a> {
    modules: &'a [u8],
    module_dots: u8,
    height_dots: u8,
}

fn draw_barcode(bitmap: &mut Bitmap, line: &Line, bars: Bars<'_>, data: &str, hri: Hri) {
    let module = u32::from(bars.module_dots.max(1));
    let width = bars.modules.len() as u32 * module;
    let hri_line =
        Line { text: data.to_owned(), align: line.align, bold: false, width: 1, height: 1, kind: LineKind::Text };
    if matches!(hri, Hri::Above | Hri::Both) {
        draw_text(bitmap, data, &hri_line);
    }
    let Some(top) = bitmap.grow(u32::from(bars.height_dots)) else { return };
    let left = align_left(line.align, width);
    for (i, &bar) in bars.modules.iter().enumerate() {
        if bar == 1 {
            bitmap.fill(left + i as u32 * module, top, module, u32::from(bars.height_dots));
        }
    }
    if matches!(hri, Hri::Below | Hri::Both) {
        draw_text(bitmap, data, &hri_line);
    }
}

/// Draws the QR code; false if the data does not fit a QR code at this level.
fn draw_qr(bitmap: &mut Bitmap, line: &Line, data: &[u8], module_dots: u8, ec_level: QrEcLevel) -> bool {
    let ec = match ec_level {
        QrEcLevel::L => qrcode::EcLevel::L,
        QrEcLevel::M => qrcode::EcLevel::M,
        QrEcLevel::Q => qrcode::EcLevel::Q,
        QrEcLevel::H => qrcode::EcLevel::H,
    };
    let Ok(code) = qrcode::QrCode::with_error_correction_level(data, ec) else { return false };
    let modules = code.width() as u32;
    let module = u32::from(module_dots.max(1));
    let Some(top) = bitmap.grow(modules * module) else { return true };
    let left = align_left(line.align, modules * module);
    for (i, color) in code.to_colors().into_iter().enumerate() {
        if color == qrcode::Color::Dark {
            let (mx, my) = (i as u32 % modules, i as u32 / modules);
            bitmap.fill(left + mx * module, top + my * module, module, module);
        }
    }
    true
}

fn draw_image(bitmap: &mut Bitmap, align: Align, width_dots: u32, height_dots: u32, bits: &[u8]) {
    let row_bytes = width_dots.div_ceil(8) as usize;
    let Some(top) = bitmap.grow(height_dots) else { return };
    let left = align_left(align, width_dots);
    for (y, row) in bits.chunks(row_bytes.max(1)).take(height_dots as usize).enumerate() {
        for x in 0..width_dots.min(PAPER_WIDTH_DOTS) {
            if row.get(x as usize / 8).is_some_and(|byte| byte & (0x80 >> (x % 8)) != 0) {
                bitmap.fill(left + x, top + y as u32, 1, 1);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::printer_emu::{Interpreter, Model, Output};

    const ESC: u8 = 0x1B;
    const GS: u8 = 0x1D;

    fn cp866(text: &str) -> Vec<u8> {
        encoding_rs::IBM866.encode(text).0.into_owned()
    }

    /// A receipt whose layout is known line by line (rows in dots from the top):
    ///
    /// | line | what | rows |
    /// |---|---|---|
    /// | 0 | "КАССА", centred, bold, double size | 16..64 |
    /// | 1 | "ИТОГО", left | 64..94 |
    /// | 2 | "ИТОГО", left, double height | 94..142 |
    /// | 3 | EAN-13 4006381333931, module 2, height 40, left | 142..182 |
    /// | 4 | QR "KASSA:1:1", module 5, level M, centred: version 1, 21 modules | 182..287 |
    /// | 5 | raster 16×3, right | 287..290 |
    fn known_receipt() -> Receipt {
        let mut b = vec![ESC, b'@', ESC, b't', 17];
        b.extend_from_slice(&[ESC, b'a', 1, ESC, b'E', 1, GS, b'!', 0x11]);
        b.extend(cp866("КАССА\n"));
        b.extend_from_slice(&[ESC, b'a', 0, ESC, b'E', 0, GS, b'!', 0x00]);
        b.extend(cp866("ИТОГО\n"));
        b.extend_from_slice(&[GS, b'!', 0x01]);
        b.extend(cp866("ИТОГО\n"));
        b.extend_from_slice(&[GS, b'!', 0x00, GS, b'h', 40, GS, b'w', 2, GS, b'k', 67, 13]);
        b.extend_from_slice(b"4006381333931");
        b.extend_from_slice(&[ESC, b'a', 1]);
        b.extend_from_slice(&[GS, b'(', b'k', 3, 0, 0x31, 0x43, 5, GS, b'(', b'k', 3, 0, 0x31, 0x45, 0x31]);
        b.extend_from_slice(&[GS, b'(', b'k', 12, 0, 0x31, 0x50, 0x30]);
        b.extend_from_slice(b"KASSA:1:1");
        b.extend_from_slice(&[GS, b'(', b'k', 3, 0, 0x31, 0x51, 0x30]);
        b.extend_from_slice(&[ESC, b'a', 2, GS, b'v', b'0', 0, 2, 0, 3, 0, 0xFF, 0x00, 0x0F, 0xF0, 0xAA, 0x55]);
        b.extend_from_slice(&[GS, b'V', 0]);
        let out = Interpreter::new(Model::Epson).push(&b);
        let [Output::Receipt(r)] = &out[..] else { panic!("{out:?}") };
        assert_eq!(r.lines.len(), 6, "{}", r.text());
        r.clone()
    }

    /// Columns and rows with ink in the band of rows `top..bottom`: (min x, max x, min y, max y).
    fn ink(bitmap: &Bitmap, top: u32, bottom: u32) -> Option<(u32, u32, u32, u32)> {
        let mut b: Option<(u32, u32, u32, u32)> = None;
        for y in top..bottom {
            for x in 0..bitmap.width() {
                if bitmap.is_black(x, y) {
                    b = Some(match b {
                        None => (x, x, y, y),
                        Some((x0, x1, y0, y1)) => (x0.min(x), x1.max(x), y0.min(y), y1.max(y)),
                    });
                }
            }
        }
        b
    }

    #[test]
    fn known_receipt_has_ink_where_expected() {
        let bitmap = render_bitmap(&known_receipt());
        assert_eq!(bitmap.width(), PAPER_WIDTH_DOTS);
        assert_eq!(bitmap.height(), 290 + MARGIN_DOTS);
        assert!(!bitmap.truncated());
        assert_eq!(ink(&bitmap, 0, MARGIN_DOTS), None, "top margin is white");

        // The centred title is symmetric about the middle of the paper, within a cell's
        // slack (glyphs sit left in their cell), and spans five double-width cells.
        let (x0, x1, y0, y1) = ink(&bitmap, 16, 64).unwrap();
        let middle = PAPER_WIDTH_DOTS / 2;
        assert!((x0 + x1).abs_diff(2 * middle) <= 2 * 4, "title ink {x0}..{x1} is not centred");
        assert!(x1 - x0 > 4 * 24 && x1 - x0 < 5 * 24, "five double-width glyphs: {x0}..{x1}");
        assert!(y0 >= 16 + 2 * 2 && y1 < 64, "{y0}..{y1}");

        // Cyrillic glyphs were drawn (not '?'), and the rows between lines stay white.
        let (_, _, single_top, single_bottom) = ink(&bitmap, 64, 94).unwrap();
        assert!(single_top >= 64 + 2 && single_bottom < 64 + 22, "{single_top}..{single_bottom}");
        assert_eq!(ink(&bitmap, 64 + 22, 94), None, "rows between lines are white");

        // Double height: the same word, exactly twice as tall, and as wide.
        let (sx0, sx1, _, _) = ink(&bitmap, 64, 94).unwrap();
        let (dx0, dx1, double_top, double_bottom) = ink(&bitmap, 94, 142).unwrap();
        assert_eq!(double_bottom + 1 - double_top, 2 * (single_bottom + 1 - single_top));
        assert_eq!((dx0, dx1), (sx0, sx1));

        // EAN-13 start guard 101 at module width 2, full bar height, from the left edge.
        for y in [142, 181] {
            let row: Vec<bool> = (0..6).map(|x| bitmap.is_black(x, y)).collect();
            assert_eq!(row, [true, true, false, false, true, true], "row {y}");
        }
        let (_, bar_right, _, _) = ink(&bitmap, 142, 182).unwrap();
        assert_eq!(bar_right, 95 * 2 - 1, "95 modules of 2 dots");

        // QR: 21 modules of 5 dots, centred; finder patterns in three corners: dark ring,
        // light ring, dark 3×3 centre; the separator column after it is light.
        let (left, top) = ((PAPER_WIDTH_DOTS - 105) / 2, 182);
        let module = |mx: u32, my: u32| bitmap.is_black(left + mx * 5 + 2, top + my * 5 + 2);
        for (cx, cy) in [(0, 0), (14, 0), (0, 14)] {
            assert!(module(cx, cy) && module(cx + 6, cy) && module(cx, cy + 6) && module(cx + 6, cy + 6));
            assert!(!module(cx + 1, cy + 1) && !module(cx + 5, cy + 5), "light ring at {cx},{cy}");
            assert!(module(cx + 2, cy + 2) && module(cx + 4, cy + 4), "dark centre at {cx},{cy}");
        }
        assert!(!module(7, 0) && !module(13, 0), "separators");
        assert_eq!(ink(&bitmap, 182, 287).map(|b| (b.0, b.1)), Some((left, left + 104)));

        // The raster image's bits, right-aligned.
        let x = PAPER_WIDTH_DOTS - 16;
        let row =
            |y: u32| (0..16).map(|i| bitmap.is_black(x + i, y) as u8).fold(0u16, |acc, b| acc << 1 | u16::from(b));
        assert_eq!([row(287), row(288), row(289)], [0xFF00, 0x0FF0, 0xAA55]);
    }

    #[test]
    fn undrawable_symbols_print_their_placeholder() {
        let line = |kind| Line { text: String::new(), align: Align::Left, bold: false, width: 1, height: 1, kind };
        let receipt = Receipt {
            lines: vec![line(LineKind::Barcode {
                symbology: "EAN-13".into(),
                data: "4006381333932".into(), // wrong check digit
                module_dots: 2,
                height_dots: 40,
                hri: Hri::None,
            })],
            cut: crate::printer_emu::CutKind::Full,
        };
        let bitmap = render_bitmap(&receipt);
        assert_eq!(bitmap.height(), LINE_SPACING_DOTS + 2 * MARGIN_DOTS, "one text row, not bars");
        assert!(ink(&bitmap, MARGIN_DOTS, MARGIN_DOTS + 30).is_some());
    }

    #[test]
    fn endless_receipts_are_cut_at_the_cap() {
        let empty =
            Line { text: String::new(), align: Align::Left, bold: false, width: 1, height: 8, kind: LineKind::Text };
        let receipt = Receipt { lines: vec![empty; 1000], cut: crate::printer_emu::CutKind::Uncut };
        let bitmap = render_bitmap(&receipt);
        assert!(bitmap.truncated());
        assert!(bitmap.height() <= PAPER_HEIGHT_DOTS_MAX);
    }

    #[test]
    fn png_round_trips() {
        let bitmap = render_bitmap(&known_receipt());
        let png = encode_png(&bitmap);
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        let mut reader = png::Decoder::new(std::io::Cursor::new(png)).read_info().unwrap();
        let mut data = vec![0; reader.output_buffer_size().unwrap()];
        let info = reader.next_frame(&mut data).unwrap();
        assert_eq!((info.width, info.height), (bitmap.width(), bitmap.height()));
        assert_eq!((info.color_type, info.bit_depth), (png::ColorType::Grayscale, png::BitDepth::One));
        for y in 0..bitmap.height() {
            for x in 0..bitmap.width() {
                let white = data[(y * info.line_size as u32 + x / 8) as usize] & (0x80 >> (x % 8)) != 0;
                assert_eq!(white, !bitmap.is_black(x, y), "dot {x},{y}");
            }
        }
    }
}
