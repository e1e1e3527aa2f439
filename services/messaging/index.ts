export * from './codec.ts';
export * from './compatibility.ts';
export * from './crc64.ts';
export * from './schemas.ts';
