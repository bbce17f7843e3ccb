// Every reader throws FormatError with the offending file first, so the CLI can print one line:
//   model.safetensors: tensor "w" ends at byte 1200, past the end of the data (1000 bytes)
export class FormatError extends Error {
  constructor(
    readonly file: string,
    readonly problem: string,
  ) {
    super(`${file}: ${problem}`);
    this.name = "FormatError";
  }
}
