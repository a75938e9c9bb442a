/** The `code` of what `f` throws (undefined when it returns): for asserting typed errors. */
export function thrownCode(f: () => unknown): string | undefined {
  try {
    f();
    return undefined;
  } catch (err) {
    return (err as { code?: string }).code;
  }
}
