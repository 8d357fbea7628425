/**
 * Globs over unit names (`*` any run, `?` one character).
 *
 * Matching is linear-time in practice and never exponential: no backtracking RegExp
 * (a pattern like `*a*a*a*a*a*a*c` makes one take seconds on a 60-character name).
 * The matcher walks pattern and name together and, on a mismatch, resumes from the
 * last `*` one character further on — earlier stars never need revisiting, so the
 * worst case is O(pattern × name), both at most a few hundred characters.
 */

export type NameMatcher = (name: string) => boolean;

/** Whether `name` matches `pattern` (consecutive stars already collapsed). */
function wildcardMatch(pattern: string, name: string): boolean {
  let p = 0;
  let n = 0;
  let star = -1; // position in pattern just after the last '*' seen
  let resume = 0; // position in name that '*' is currently taken to end at
  while (n < name.length) {
    const c = pattern.charCodeAt(p);
    if (p < pattern.length && c === 42 /* * */) {
      star = ++p;
      resume = n;
    } else if (p < pattern.length && (c === 63 /* ? */ || c === name.charCodeAt(n))) {
      p++;
      n++;
    } else if (star >= 0) {
      // Let the last star swallow one more character and retry from just after it.
      p = star;
      n = ++resume;
    } else return false;
  }
  while (p < pattern.length && pattern.charCodeAt(p) === 42) p++;
  return p === pattern.length;
}

/** Compiles one pattern (uncached: see GlobCache). */
export function compileGlob(pattern: string): NameMatcher {
  const glob = pattern.replace(/\*{2,}/g, '*');
  const star = glob.indexOf('*');
  const anyChar = glob.includes('?');
  if (star < 0 && !anyChar) return (n) => n === glob;
  // The common fleet idiom `web@*`: a prefix test.
  if (star === glob.length - 1 && !anyChar) {
    const prefix = glob.slice(0, -1);
    return (n) => n.startsWith(prefix);
  }
  return (n) => wildcardMatch(glob, n);
}

/**
 * Compiled globs by pattern, bounded: one per placement run, so patterns of units long
 * gone do not pile up in a long-lived process. When full it starts over (compiling is
 * cheap; the cache only saves repeats within a run).
 */
export class GlobCache {
  private readonly map = new Map<string, NameMatcher>();
  constructor(readonly max = 10_000) {}

  get size(): number {
    return this.map.size;
  }

  get(pattern: string): NameMatcher {
    let m = this.map.get(pattern);
    if (m) return m;
    if (this.map.size >= this.max) this.map.clear();
    m = compileGlob(pattern);
    this.map.set(pattern, m);
    return m;
  }
}
