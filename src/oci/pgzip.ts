import { Transform, type TransformCallback } from 'node:stream';
import { constants, crc32, deflateRaw } from 'node:zlib';
import { availableParallelism } from 'node:os';
import { promisify } from 'node:util';

const deflate = promisify(deflateRaw) as (buf: Buffer, opts: object) => Promise<Buffer>;

const BLOCK = 1024 * 1024;
const WINDOW = 32 * 1024;
/** gzip header: deflate, no flags, mtime 0, no extra flags, OS unix. Fixed, so output is reproducible. */
const HEADER = Buffer.from([0x1f, 0x8b, 0x08, 0, 0, 0, 0, 0, 0, 0x03]);

/**
 * gzip compressed on several threads, as pigz does: the input is cut into 1 MiB blocks,
 * each deflated on the libuv pool with the previous block's last 32 KiB as its dictionary
 * and ended by a sync flush, so the pieces join into one standard deflate stream. The
 * output depends only on the input and the level, never on timing.
 */
export class ParallelGzip extends Transform {
  /** Input blocks are recycled once deflated: a layer is hundreds of blocks, and fresh ones are garbage the GC only reaps late. */
  private readonly free: Buffer[] = [];
  private block: Buffer = Buffer.allocUnsafe(BLOCK);
  private filled = 0;
  private dictionary: Buffer | undefined;
  private crc = 0;
  private size = 0;
  private readonly queue: Promise<Buffer>[] = [];

  constructor(
    private readonly level: number,
    private readonly inFlight = Math.max(2, Math.min(availableParallelism(), 4)),
  ) {
    super();
    this.push(HEADER);
  }

  private submit(flush: number): void {
    const data = this.block.subarray(0, this.filled);
    this.crc = crc32(data, this.crc);
    this.size += data.length;
    // One output chunk per block: each block is then a single job on the pool.
    const opts: Record<string, unknown> = { level: this.level, memLevel: 9, finishFlush: flush, chunkSize: BLOCK + WINDOW };
    if (this.dictionary) opts.dictionary = this.dictionary;
    const input = this.block;
    this.queue.push(
      deflate(data, opts).then((out) => {
        this.free.push(input);
        return out;
      }),
    );
    this.dictionary = Buffer.from(data.subarray(Math.max(0, data.length - WINDOW)));
    this.block = this.free.pop() ?? Buffer.allocUnsafe(BLOCK);
    this.filled = 0;
  }

  private async drain(keep: number): Promise<void> {
    while (this.queue.length > keep) this.push(await this.queue.shift()!);
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    (async () => {
      let offset = 0;
      while (offset < chunk.length) {
        const n = Math.min(BLOCK - this.filled, chunk.length - offset);
        chunk.copy(this.block, this.filled, offset, offset + n);
        this.filled += n;
        offset += n;
        if (this.filled === BLOCK) {
          this.submit(constants.Z_SYNC_FLUSH);
          await this.drain(this.inFlight - 1);
        }
      }
    })().then(() => cb(), cb);
  }

  override _flush(cb: TransformCallback): void {
    (async () => {
      this.submit(constants.Z_FINISH);
      await this.drain(0);
      const trailer = Buffer.alloc(8);
      trailer.writeUInt32LE(this.crc >>> 0, 0);
      trailer.writeUInt32LE(this.size % 2 ** 32, 4);
      this.push(trailer);
    })().then(() => cb(), cb);
  }
}
