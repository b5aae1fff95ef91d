// The WebDataset key rule: a member's key is its path up to the first dot of
// the basename (the dirname stays in the key), the rest is its extension:
// `train/n01440764_10026.seg.png` -> key `train/n01440764_10026`, ext `seg.png`.

export interface MemberName {
  key: string;
  ext: string;
  /** `__key__`-style meta members (basename stem wrapped in double underscores) are not sample data. */
  meta: boolean;
}

export function splitMemberName(name: string): MemberName {
  const slash = name.lastIndexOf('/');
  const base = name.slice(slash + 1);
  const dot = base.indexOf('.');
  const stem = dot < 0 ? base : base.slice(0, dot);
  return {
    key: name.slice(0, slash + 1) + stem,
    ext: dot < 0 ? '' : base.slice(dot + 1),
    meta: /^__.*__$/.test(stem),
  };
}
