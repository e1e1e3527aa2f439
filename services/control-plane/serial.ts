/**
 * Runs a process manager's pass one at a time: a trigger that arrives while a pass runs asks for
 * exactly one more pass after it (triggers coalesce), so passes never overlap and none is lost.
 */
export class SerialPasses {
  private running: Promise<void> | null = null;
  private again = false;

  constructor(private readonly pass: () => Promise<void>) {}

  run(): Promise<void> {
    if (this.running) {
      this.again = true;
      return this.running;
    }
    this.running = (async () => {
      try {
        do {
          this.again = false;
          await this.pass();
        } while (this.again);
      } finally {
        this.running = null;
      }
    })();
    return this.running;
  }
}
