//! Writes a tiny MaxMind DB (format 2.0, IPv4 tree, 24-bit records) holding one
//! network, so GeoIP enrichment is tested against a real .mmdb file.

use std::net::Ipv4Addr;

fn string(out: &mut Vec<u8>, s: &str) {
    assert!(s.len() < 29);
    out.push((2 << 5) | s.len() as u8);
    out.extend_from_slice(s.as_bytes());
}

fn map_header(out: &mut Vec<u8>, entries: usize) {
    out.push((7 << 5) | entries as u8);
}

fn array_header(out: &mut Vec<u8>, len: usize) {
    out.push(len as u8); // extended type...
    out.push(11 - 7); // ...array
}

fn uint(out: &mut Vec<u8>, type_id: u8, value: u64) {
    let bytes = value.to_be_bytes();
    let skip = bytes.iter().take_while(|b| **b == 0).count();
    let payload = &bytes[skip..];
    if type_id <= 7 {
        out.push((type_id << 5) | payload.len() as u8);
    } else {
        out.push(payload.len() as u8);
        out.push(type_id - 7);
    }
    out.extend_from_slice(payload);
}

/// A database where `network/prefix` is in `country`/`region`/`city`.
pub fn write(
    path: &std::path::Path,
    network: Ipv4Addr,
    prefix: u32,
    country: &str,
    region: &str,
    city: &str,
) {
    let mut data = Vec::new();
    map_header(&mut data, 3);
    string(&mut data, "country");
    map_header(&mut data, 1);
    string(&mut data, "iso_code");
    string(&mut data, country);
    string(&mut data, "subdivisions");
    array_header(&mut data, 1);
    map_header(&mut data, 1);
    string(&mut data, "iso_code");
    string(&mut data, region);
    string(&mut data, "city");
    map_header(&mut data, 1);
    string(&mut data, "names");
    map_header(&mut data, 1);
    string(&mut data, "en");
    string(&mut data, city);

    let node_count = prefix;
    let no_data = node_count;
    let data_pointer = node_count + 16; // offset 0 in the data section
    let bits = u32::from(network);
    let mut tree = Vec::new();
    for depth in 0..prefix {
        let bit = (bits >> (31 - depth)) & 1;
        let next = if depth + 1 == prefix {
            data_pointer
        } else {
            depth + 1
        };
        let (left, right) = if bit == 0 {
            (next, no_data)
        } else {
            (no_data, next)
        };
        tree.extend_from_slice(&left.to_be_bytes()[1..]);
        tree.extend_from_slice(&right.to_be_bytes()[1..]);
    }

    let mut meta = Vec::new();
    map_header(&mut meta, 9);
    string(&mut meta, "description");
    map_header(&mut meta, 1);
    string(&mut meta, "en");
    string(&mut meta, "relurl test database");
    string(&mut meta, "node_count");
    uint(&mut meta, 6, node_count as u64);
    string(&mut meta, "record_size");
    uint(&mut meta, 5, 24);
    string(&mut meta, "ip_version");
    uint(&mut meta, 5, 4);
    string(&mut meta, "database_type");
    string(&mut meta, "relurl-test-City");
    string(&mut meta, "languages");
    array_header(&mut meta, 1);
    string(&mut meta, "en");
    string(&mut meta, "binary_format_major_version");
    uint(&mut meta, 5, 2);
    string(&mut meta, "binary_format_minor_version");
    uint(&mut meta, 5, 0);
    string(&mut meta, "build_epoch");
    uint(&mut meta, 9, 1_700_000_000);

    let mut file = tree;
    file.extend_from_slice(&[0u8; 16]);
    file.extend_from_slice(&data);
    file.extend_from_slice(b"\xAB\xCD\xEFMaxMind.com");
    file.extend_from_slice(&meta);
    std::fs::write(path, file).expect("write mmdb");
}
