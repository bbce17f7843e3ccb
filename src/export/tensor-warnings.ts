/**
 * Per-tensor export warnings, one line per distinct reason. A 22-layer model exported to a type
 * that cannot hold its codes would otherwise print the same sentence for each of its 154 linears.
 */
export class TensorWarnings {
  private readonly tensorsByReason = new Map<string, string[]>();

  constructor(private readonly shown = 3) {}

  add(tensor: string, reason: string): void {
    const tensors = this.tensorsByReason.get(reason);
    if (tensors) tensors.push(tensor);
    else this.tensorsByReason.set(reason, [tensor]);
  }

  /** `reason: "a", "b", "c" and N more`, in the order the reasons first appeared. */
  lines(): string[] {
    return [...this.tensorsByReason].map(([reason, tensors]) => {
      const names = tensors.slice(0, this.shown).map((t) => `"${t}"`).join(", ");
      const more = tensors.length > this.shown ? ` and ${tensors.length - this.shown} more` : "";
      return `${reason}: ${names}${more}`;
    });
  }
}
