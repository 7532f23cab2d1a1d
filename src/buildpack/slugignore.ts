/**
 * `.slugignore`: one pattern per line (# comments), removed from the source before any
 * buildpack runs, as on Heroku. A pattern without "/" matches a name at any depth; with "/"
 * it matches from the app root. `*` and `?` are globs; a match on a directory takes it whole.
 */
export function slugignoreMatcher(text: string): (relPath: string) => boolean {
  const rules = text
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'))
    .map((pattern) => {
      const anchored = pattern.replace(/\/+$/, '').includes('/');
      const body = pattern.replace(/^\/+/, '').replace(/\/+$/, '');
      const re = body.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '[^/]*').replace(/\?/g, '[^/]');
      return new RegExp(anchored ? `^${re}$` : `(^|/)${re}$`);
    });
  return (relPath) => rules.some((r) => r.test(relPath));
}
