// A revert stack (Incus style): each applied step pushes its undo; on failure the undos run in
// reverse order, and a failing undo is reported but does not stop the others.
export class Reverter {
  private readonly undos: Array<{ what: string; fn: () => Promise<void> }> = [];

  add(what: string, fn: () => Promise<void>): void {
    this.undos.push({ what, fn });
  }

  /** Runs every undo in reverse order; returns the ones that failed. */
  async revert(): Promise<string[]> {
    const failed: string[] = [];
    while (this.undos.length > 0) {
      const u = this.undos.pop();
      if (!u) break;
      try {
        await u.fn();
      } catch (e) {
        failed.push(`${u.what}: ${e instanceof Error ? e.message : String(e)}`);
      }
    }
    return failed;
  }

  /** Success: forget the undos. */
  success(): void {
    this.undos.length = 0;
  }
}
