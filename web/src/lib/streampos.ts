/** The highest `stream_pos` seen for a user, persisted so a reload can `sync` from it. */
export class StreamPos {
  private key: string;
  private pos: number | null;

  constructor(
    private storage: Storage,
    userId: string,
  ) {
    this.key = `chatnode.stream_pos.${userId}`;
    const raw = storage.getItem(this.key);
    const n = raw === null ? NaN : Number(raw);
    this.pos = Number.isFinite(n) ? n : null;
  }

  get value(): number | null {
    return this.pos;
  }

  /** Records a position; only ever moves forward. Returns true if it advanced. */
  observe(pos: unknown): boolean {
    if (typeof pos !== 'number' || !Number.isFinite(pos)) return false;
    if (this.pos !== null && pos <= this.pos) return false;
    this.pos = pos;
    this.storage.setItem(this.key, String(pos));
    return true;
  }
}
