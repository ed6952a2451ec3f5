/** Throttles outgoing typing frames: `true` at most every `throttleMs`, `false` after `idleMs` without input. */
export class TypingSender {
  private typing = false;
  private lastSent = 0;
  private idle: unknown = null;

  constructor(
    private send: (typing: boolean) => void,
    private opts: {
      throttleMs?: number;
      idleMs?: number;
      now?: () => number;
      setTimer?: (fn: () => void, ms: number) => unknown;
      clearTimer?: (t: unknown) => void;
    } = {},
  ) {}

  private get now() {
    return (this.opts.now ?? Date.now)();
  }

  /** Call on each keystroke. */
  input(): void {
    const throttle = this.opts.throttleMs ?? 3_000;
    if (!this.typing || this.now - this.lastSent >= throttle) {
      this.typing = true;
      this.lastSent = this.now;
      this.send(true);
    }
    const set = this.opts.setTimer ?? ((fn, ms) => setTimeout(fn, ms));
    const clear = this.opts.clearTimer ?? ((t) => clearTimeout(t as ReturnType<typeof setTimeout>));
    if (this.idle) clear(this.idle);
    this.idle = set(() => {
      this.idle = null;
      this.stop();
    }, this.opts.idleMs ?? 4_000);
  }

  /** Call when the message is sent, the field is cleared or the chat is left. */
  stop(): void {
    const clear = this.opts.clearTimer ?? ((t) => clearTimeout(t as ReturnType<typeof setTimeout>));
    if (this.idle) clear(this.idle);
    this.idle = null;
    if (this.typing) {
      this.typing = false;
      this.send(false);
    }
  }
}
