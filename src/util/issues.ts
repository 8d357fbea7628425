/** How every command and error message lists validation issues (structural: util stays below model). */

export interface IssueLike {
  /** JSON pointer into the document; '' is the root. */
  path: string;
  message: string;
}

/** "  /path: message" per issue (the root as "/"), one per line, no trailing newline. */
export function formatIssues(issues: readonly IssueLike[]): string {
  return issues.map((i) => `  ${i.path || '/'}: ${i.message}`).join('\n');
}
