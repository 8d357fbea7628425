/** Globs over unit names (`*` any run, `?` one character), compiled once per pattern. */

export type NameMatcher = (name: string) => boolean;

const cache = new Map<string, NameMatcher>();

export function compileGlob(pattern: string): NameMatcher {
  let m = cache.get(pattern);
  if (m) return m;
  const star = pattern.indexOf('*');
  if (star < 0 && !pattern.includes('?')) m = (n) => n === pattern;
  else if (star === pattern.length - 1 && !pattern.includes('?')) {
    // The common fleet idiom `web@*`: a prefix test, no regex.
    const prefix = pattern.slice(0, -1);
    m = (n) => n.startsWith(prefix);
  } else {
    const re = new RegExp(`^${pattern.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.')}$`);
    m = (n) => re.test(n);
  }
  cache.set(pattern, m);
  return m;
}
