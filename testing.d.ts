import type { GgufSpec } from './index'

/**
 * Writes a GGUF file with the project's writer (tests, synthetic models, hostile files).
 *
 * `spec`: `{ metadata?: Record<string, value | { type, value, elementType? }>, tensors?: Array<{
 * name, type (ggml name) | typeId, shape, data?: 'pattern' | 'sparse', seed?, offset? }>,
 * version? (3), alignment? (32), magic?, bigEndian?, tensorCount?, kvCount?, truncateTo? }`.
 * Untyped metadata numbers become u32 (u64 when large, i32 when negative, f32 when fractional).
 * `'sparse'` tensors write only their first and last 4 KiB, leaving a hole (no disk cost);
 * `truncateTo` cuts the file to that many bytes. Resolves to the number of bytes of the file.
 */
export declare function writeGguf(path: string, spec: GgufSpec): Promise<number>
