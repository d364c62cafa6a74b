//! Shared by the checks.

/// The input as a C string: the bytes with a NUL appended. An embedded NUL
/// ends the string early, as it would in C.
pub fn c_string(data: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(data.len() + 1);
    v.extend_from_slice(data);
    v.push(0);
    v
}

/// What a callee sees of `data` passed as a C string: up to the first NUL.
pub fn visible(data: &[u8]) -> &[u8] {
    match data.iter().position(|b| *b == 0) {
        Some(i) => &data[..i],
        None => data,
    }
}
