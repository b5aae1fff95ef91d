// The WebDataset naming rules, as webdataset 1.x applies them (its
// `base_plus_ext`, `group_by_keys(lcase=True)` and `tar_file_iterator`
// meta filter), so a shard yields the same samples here as there:
// - key and extension: the path up to the first dot of the basename (the
//   dirname stays in the key), the rest is the extension:
//   `train/n01440764_10026.seg.png` -> key `train/n01440764_10026`, ext `seg.png`;
// - the field name is the extension lower-cased (`a.JPG` -> field `jpg`);
// - a member without an extension (`README`, a top-level `.hidden`) belongs
//   to no sample;
// - meta members are `__name__` at the top level or anything under a
//   `__name__/` directory; `__meta__.json` is an ordinary member of sample
//   `__meta__`, as in webdataset.

export interface MemberName {
  /** Sample key; empty when the member belongs to no sample (`skip` says why). */
  key: string;
  /** Field name: the extension, lower-cased. */
  ext: string;
  /** Why the member belongs to no sample, or undefined when it does. */
  skip: 'meta' | 'no-extension' | undefined;
}

// webdataset's base_plus_ext regex, with the same backtracking semantics.
const BASE_PLUS_EXT = /^((?:.*\/|)[^.]+)[.]([^/]*)$/;
// webdataset's skip_meta default, matched at the start of the name.
const SKIP_META = /^__[^/]*__($|\/)/;

export function splitMemberName(name: string): MemberName {
  if ((!name.includes('/') && name.startsWith('__') && name.endsWith('__')) || SKIP_META.test(name)) {
    return { key: '', ext: '', skip: 'meta' };
  }
  const m = BASE_PLUS_EXT.exec(name);
  if (!m) return { key: '', ext: '', skip: 'no-extension' };
  return { key: m[1]!, ext: m[2]!.toLowerCase(), skip: undefined };
}

/** The field name of a member whose name is `key` + `suffix` (suffix `.ext`). */
export function fieldOfSuffix(suffix: string): string {
  return (suffix.startsWith('.') ? suffix.slice(1) : suffix).toLowerCase();
}
