use super::*;
use proptest::prelude::*;

fn welcome(version: u32) -> HqMessage {
    let software_version = (version >= 3).then(|| "0.2.0".to_owned());
    HqMessage::Welcome { version, store: StoreId(3), acked_seq: 99, software_version }
}

#[test]
fn frames_survive_any_split() {
    for version in SUPPORTED_VERSIONS {
        let msgs = vec![HqMessage::Ack { upto: 7 }, HqMessage::Refused { reason: "нет".into() }, welcome(version)];
        let bytes: Vec<u8> = msgs.iter().flat_map(|m| encode_hq(version, m).unwrap()).collect();
        for split in 0..bytes.len() {
            let mut d = FrameDecoder::default();
            let mut out = Vec::new();
            for chunk in [&bytes[..split], &bytes[split..]] {
                d.push(chunk);
                while let Some(m) = d.next_hq(version).unwrap() {
                    out.push(m);
                }
            }
            assert_eq!(out, msgs);
        }
    }
}

#[test]
fn alpn_names_and_versions_match() {
    assert_eq!(alpn(PROTOCOL_VERSION), Some(ALPN));
    assert_eq!(SUPPORTED_VERSIONS[0], PROTOCOL_VERSION, "the current version is preferred");
    for v in SUPPORTED_VERSIONS {
        assert_eq!(version_of_alpn(alpn(v).unwrap()), Some(v));
        assert_eq!(alpn(v).unwrap(), format!("kassa-sync/{v}").as_bytes());
    }
    assert_eq!(version_of_alpn(b"kassa-sync/1"), None);
    assert_eq!(alpn(1), None);
    assert!(matches!(encode_hq(1, &HqMessage::Ack { upto: 1 }), Err(CodecError::Version(1))));
    assert!(matches!(decode_store(6, &[0, 0]), Err(CodecError::Version(6))));
}

#[test]
fn protocol_2_has_no_software_version_and_3_requires_a_sane_one() {
    let hello = |software_version: Option<&str>| StoreMessage::Hello {
        version: 3,
        actor: ActorId { store: StoreId(1), epoch: 1 },
        catalog_version: 0,
        promotions_version: 0,
        head: 0,
        software_version: software_version.map(str::to_owned),
    };
    // Protocol 2 leaves it out: what comes back has none.
    let frame = encode_store(2, &hello(Some("0.2.0"))).unwrap();
    let back = decode_store(2, &frame[4..]).unwrap();
    assert_eq!(back, hello(None));
    // Protocol 3 carries it, and only a sane one.
    let frame = encode_store(3, &hello(Some("0.2.0-rc.1+g1a2b3c"))).unwrap();
    assert_eq!(decode_store(3, &frame[4..]).unwrap(), hello(Some("0.2.0-rc.1+g1a2b3c")));
    let too_long = "9".repeat(SOFTWARE_VERSION_BYTES_MAX + 1);
    for bad in [None, Some(""), Some("0.2 beta"), Some("0.2\n"), Some(too_long.as_str())] {
        assert!(matches!(encode_store(3, &hello(bad)), Err(CodecError::Invalid(_))), "{bad:?}");
    }
    // A peer's bad one is refused as invalid, not a panic.
    let v3 = v3::StoreMessage::Hello {
        version: 3,
        actor: ActorId { store: StoreId(1), epoch: 1 },
        catalog_version: 0,
        head: 0,
        software_version: "x y".into(),
    };
    let frame = encode_frame(&v3).unwrap();
    assert!(matches!(decode_store(3, &frame[4..]), Err(CodecError::Invalid(_))));
    assert!(matches!(encode_hq(3, &welcome(2)), Err(CodecError::Invalid(_))));
}

#[test]
fn a_value_the_domain_refuses_is_a_codec_error() {
    // A GTIN with a wrong check digit, and rules whose point is worth more than it costs.
    let item = crate::format::v1::CatalogItem {
        sku: crate::Sku("1".into()),
        gtin: Some(crate::format::v1::Gtin(*b"04600000000001")),
        name: "x".into(),
        category: "c".into(),
        price: crate::Kopecks(1),
        vat: crate::format::v1::VatRate::Vat20,
        unit: crate::format::v1::Unit::Piece,
        plu: None,
    };
    let rules = crate::format::v1::LoyaltyRules {
        earn_kopecks_per_point: 100,
        excluded_categories: Vec::new(),
        max_share_percent: 50,
        point_value_kopecks: 1000,
    };
    for version in SUPPORTED_VERSIONS {
        let frames = match version {
            2 => [
                encode_frame(&v2::HqMessage::CatalogPage { version: 1, items: vec![item.clone()], last: true }),
                encode_frame(&v2::HqMessage::Rules { version: 1, rules: rules.clone() }),
            ],
            _ => [
                encode_frame(&v3::HqMessage::CatalogPage { version: 1, items: vec![item.clone()], last: true }),
                encode_frame(&v3::HqMessage::Rules { version: 1, rules: rules.clone() }),
            ],
        };
        for frame in frames {
            let mut d = FrameDecoder::default();
            d.push(&frame.unwrap());
            assert!(matches!(d.next_hq(version), Err(CodecError::Invalid(_))));
            assert_eq!(d.buffered(), 0, "the bad frame is consumed");
        }
    }
}

#[test]
fn oversized_length_is_refused_before_buffering() {
    let mut d = FrameDecoder::default();
    d.push(&u32::try_from(FRAME_BYTES_MAX + 1).unwrap().to_be_bytes());
    assert!(matches!(d.next_hq(PROTOCOL_VERSION), Err(CodecError::TooLarge(_))));
}

#[test]
fn large_messages_are_compressed_and_come_back_equal() {
    let reason = "Молоко 3,2% 1 л «Ладога» ".repeat(200);
    let msg = HqMessage::Refused { reason: reason.clone() };
    for version in SUPPORTED_VERSIONS {
        let frame = encode_hq(version, &msg).unwrap();
        assert_eq!(frame[4], ENCODING_ZSTD);
        assert!(frame.len() < reason.len() / 10);
        let mut d = FrameDecoder::default();
        d.push(&frame);
        assert_eq!(d.next_hq(version).unwrap(), Some(msg.clone()));
        // Small ones go as they are.
        assert_eq!(encode_hq(version, &HqMessage::Ack { upto: 1 }).unwrap()[4], ENCODING_PLAIN);
    }
}

fn frame_of(encoding: u8, payload: &[u8]) -> Vec<u8> {
    let mut f = u32::try_from(payload.len() + 1).unwrap().to_be_bytes().to_vec();
    f.push(encoding);
    f.extend_from_slice(payload);
    f
}

#[test]
fn a_compressed_frame_declaring_more_than_the_cap_is_refused_before_decompressing() {
    // 64 MiB of zeros compress to a few kilobytes: a bomb, if we trusted it.
    let bomb = zstd::bulk::compress(&vec![0u8; 64 << 20], 3).unwrap();
    assert!(bomb.len() < 64 * 1024);
    let mut d = FrameDecoder::default();
    d.push(&frame_of(ENCODING_ZSTD, &bomb));
    assert!(matches!(d.next_hq(PROTOCOL_VERSION), Err(CodecError::TooLarge(n)) if n == 64 << 20));
}

#[test]
fn a_compressed_frame_without_its_size_or_of_unknown_encoding_is_refused() {
    // A streaming zstd frame does not declare its content size.
    let mut enc = zstd::stream::Encoder::new(Vec::new(), 3).unwrap();
    std::io::Write::write_all(&mut enc, &postcard::to_stdvec(&v3::HqMessage::Ack { upto: 1 }).unwrap()).unwrap();
    let streamed = enc.finish().unwrap();
    let mut d = FrameDecoder::default();
    d.push(&frame_of(ENCODING_ZSTD, &streamed));
    assert!(matches!(d.next_hq(PROTOCOL_VERSION), Err(CodecError::Compression(_))));
    let mut d = FrameDecoder::default();
    d.push(&frame_of(7, &[0]));
    assert!(matches!(d.next_hq(PROTOCOL_VERSION), Err(CodecError::Encoding(7))));
    let mut d = FrameDecoder::default();
    d.push(&frame_of(ENCODING_ZSTD, b"not zstd at all"));
    assert!(matches!(d.next_hq(PROTOCOL_VERSION), Err(CodecError::Compression(_))));
}

proptest! {
    #[test]
    fn decoding_garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        for version in SUPPORTED_VERSIONS {
            let mut d = FrameDecoder::default();
            d.push(&bytes);
            for _ in 0..8 {
                match d.next_store(version) {
                    Ok(Some(_)) => {}
                    _ => break,
                }
            }
        }
    }
}
