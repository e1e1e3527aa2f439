/**
 * CRC-64-AVRO, the Rabin fingerprint of the Avro specification ("Schema Fingerprints"), ported
 * with BigInt. avsc 5.7 has none (`Type#fingerprint` only knows Node crypto's hashes).
 */

/** The spec's `EMPTY`: the fingerprint of zero bytes, and the polynomial of the table. */
export const CRC64_AVRO_EMPTY = 0xc15d213aa4d7a795n;

const MASK = 0xffff_ffff_ffff_ffffn;

const TABLE: readonly bigint[] = Array.from({ length: 256 }, (_, i) => {
  let fp = BigInt(i);
  for (let j = 0; j < 8; j++) fp = (fp >> 1n) ^ (CRC64_AVRO_EMPTY & (-(fp & 1n) & MASK));
  return fp;
});

/** The 64-bit fingerprint (unsigned) of `bytes`. */
export function crc64Avro(bytes: Uint8Array): bigint {
  let fp = CRC64_AVRO_EMPTY;
  for (const byte of bytes) {
    // The index is always in 0..255, so the table lookup cannot miss.
    fp = (fp >> 8n) ^ (TABLE[Number((fp ^ BigInt(byte)) & 0xffn)] as bigint);
  }
  return fp;
}

/** The fingerprint as the 8 little-endian bytes single-object encoding puts in its header. */
export function fingerprintLE(fp: bigint): Buffer {
  const out = Buffer.alloc(8);
  out.writeBigUInt64LE(fp & MASK);
  return out;
}

/** The fingerprint's 8 little-endian bytes as 16 hex digits (how errors and manifests show it). */
export const fingerprintHex = (fp: bigint): string => fingerprintLE(fp).toString('hex');
