//! QR codes in images (二维码): decoded from the image's bytes with `rqrr`, so the rules can tell a
//! personal payment code from a link ([`super::behaviour::classify_qr`]). Decoding is bounded — an
//! image too large in bytes or pixels is read at a reduced size or skipped — and whatever an image
//! holds, it answers a list, never a panic.

/// Images larger than this are not read: no chat image comes near it.
pub const MAX_BYTES: usize = 20 * 1024 * 1024;
/// The longer side an image is scaled down to before the search: QR codes sent in chats are large
/// in their picture, and the search costs grow with the pixels.
const MAX_SIDE: u32 = 1600;

/// The payloads of the QR codes in an image (PNG, JPEG, GIF, BMP or WebP bytes); empty for anything
/// else, or for an image without a readable code.
pub fn decode(bytes: &[u8]) -> Vec<String> {
    if bytes.len() > MAX_BYTES {
        return Vec::new();
    }
    // The decoders are third-party code over hostile bytes: a panic inside them is one image not
    // read, not a stopped puller.
    std::panic::catch_unwind(|| decode_image(bytes)).unwrap_or_default()
}

fn decode_image(bytes: &[u8]) -> Vec<String> {
    let Ok(reader) = image::ImageReader::new(std::io::Cursor::new(bytes)).with_guessed_format()
    else {
        return Vec::new();
    };
    let mut reader = reader;
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(20_000);
    limits.max_image_height = Some(20_000);
    limits.max_alloc = Some(256 * 1024 * 1024);
    reader.limits(limits);
    let Ok(img) = reader.decode() else {
        return Vec::new();
    };
    let img = if img.width().max(img.height()) > MAX_SIDE {
        img.thumbnail(MAX_SIDE, MAX_SIDE)
    } else {
        img
    };
    grey(&img.to_luma8())
}

/// The payloads of the QR codes in a greyscale picture.
pub fn grey(img: &image::GrayImage) -> Vec<String> {
    let (w, h) = img.dimensions();
    let mut prepared =
        rqrr::PreparedImage::prepare_from_greyscale(w as usize, h as usize, |x, y| {
            img.get_pixel(x as u32, y as u32).0[0]
        });
    let mut out: Vec<String> = Vec::new();
    for grid in prepared.detect_grids() {
        if let Ok((_, content)) = grid.decode() {
            if !content.is_empty() && !out.contains(&content) {
                out.push(content);
            }
        }
    }
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A PNG of a QR code of `payload`, drawn as a phone shows it: 8 pixels a module, a quiet zone.
    pub(crate) fn png_of(payload: &str) -> Vec<u8> {
        let code = qrcode::QrCode::new(payload.as_bytes()).unwrap();
        let (modules, scale, quiet) = (code.width() as u32, 8u32, 4u32);
        let colors = code.to_colors();
        let side = (modules + 2 * quiet) * scale;
        let img = image::GrayImage::from_fn(side, side, |x, y| {
            let (mx, my) = (
                (x / scale) as i64 - quiet as i64,
                (y / scale) as i64 - quiet as i64,
            );
            let dark = mx >= 0
                && my >= 0
                && (mx as u32) < modules
                && (my as u32) < modules
                && colors[(my as u32 * modules + mx as u32) as usize] == qrcode::Color::Dark;
            image::Luma([if dark { 0 } else { 255 }])
        });
        let mut out = std::io::Cursor::new(Vec::new());
        img.write_to(&mut out, image::ImageFormat::Png).unwrap();
        out.into_inner()
    }

    #[test]
    fn a_personal_payment_code_is_read_from_png_bytes_and_classified() {
        let payload = "wxp://f2f0pQxAbCdEfGhIjKlMnOpQrStUv";
        let found = decode(&png_of(payload));
        assert_eq!(found, vec![payload.to_string()]);
        let (category, severity, word) = crate::sensitive::behaviour::classify_qr(
            &found[0],
            crate::sensitive::Severity::High,
            &[],
        )
        .unwrap();
        assert_eq!(
            (category, severity),
            ("飞单", crate::sensitive::Severity::High)
        );
        assert_eq!(word, "微信收款码");
        let alipay = decode(&png_of("https://qr.alipay.com/fkx18425xyzabc"));
        assert_eq!(alipay.len(), 1);
    }

    #[test]
    fn bytes_that_are_no_image_or_no_code_give_nothing() {
        assert!(decode(b"not an image").is_empty());
        assert!(decode(&[0x89, b'P', b'N', b'G', 0x0d, 0x0a, 0x1a, 0x0a, 0, 0]).is_empty());
        let blank = image::GrayImage::from_pixel(64, 64, image::Luma([255]));
        let mut png = std::io::Cursor::new(Vec::new());
        blank.write_to(&mut png, image::ImageFormat::Png).unwrap();
        assert!(decode(&png.into_inner()).is_empty());
    }
}
