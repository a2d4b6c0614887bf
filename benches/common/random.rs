//! Test data shared by the benches and the integration tests (which
//! include this file by path).

/// xorshift64*: `size` bytes incompressible enough that gzip can't shrink
/// them, one stream per (`seed`, `stream`).
pub fn random_bytes(seed: u64, stream: u64, size: usize) -> Vec<u8> {
    let mut state = (seed ^ stream.wrapping_mul(0x9E37_79B9_7F4A_7C15)) | 1;
    let mut out = Vec::with_capacity(size + 8);
    while out.len() < size {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        out.extend_from_slice(&state.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    out.truncate(size);
    out
}
