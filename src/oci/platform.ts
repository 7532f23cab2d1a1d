import { UsageError } from '../errors.js';

export interface Platform {
  architecture: string;
  os: string;
  variant?: string;
  'os.version'?: string;
  'os.features'?: string[];
}

const ARCH_ALIASES: Record<string, string> = {
  aarch64: 'arm64',
  x86_64: 'amd64',
  'x86-64': 'amd64',
  armhf: 'arm',
  armel: 'arm',
  i386: '386',
  i686: '386',
};

/** Canonical Go-style names: aarch64 = arm64 (variant v8), arm defaults to v7. */
export function normalizePlatform(p: Platform): Platform {
  // containerd lowercases both before it compares: AMD64 is amd64 to a node.
  const arch = p.architecture.toLowerCase();
  const architecture = ARCH_ALIASES[arch] ?? arch;
  let variant = p.variant;
  if (architecture === 'arm64' && (variant === undefined || variant === '8')) variant = 'v8';
  if (architecture === 'arm' && variant === undefined) variant = arch === 'armel' ? 'v6' : 'v7';
  if (architecture === 'arm' && variant !== undefined && /^\d$/.test(variant)) variant = `v${variant}`;
  const out: Platform = { ...p, architecture, os: p.os.toLowerCase() };
  if (variant === undefined) delete out.variant;
  else out.variant = variant;
  return out;
}

/** True when `candidate` can serve `wanted`; an unspecified wanted variant matches any. */
export function platformMatches(wanted: Platform, candidate: Platform): boolean {
  const w = normalizePlatform(wanted);
  const c = normalizePlatform(candidate);
  if (w.os !== c.os || w.architecture !== c.architecture) return false;
  if (wanted.variant !== undefined && w.variant !== c.variant) return false;
  return true;
}

/**
 * Could a node pinned to `pin` (a nodeSelector's kubernetes.io/os and /arch) pick `candidate`?
 * Errs towards yes: names are compared as containerd normalises them, and an empty os or
 * architecture (containerd reads an empty os as the node's own) matches any pin.
 */
export function mayServe(pin: { os?: string; architecture?: string }, candidate: Partial<Platform>): boolean {
  const c = normalizePlatform({ os: candidate.os ?? '', architecture: candidate.architecture ?? '' });
  const w = normalizePlatform({ os: pin.os ?? '', architecture: pin.architecture ?? '' });
  if (w.os !== '' && c.os !== '' && w.os !== c.os) return false;
  return w.architecture === '' || c.architecture === '' || w.architecture === c.architecture;
}

export function formatPlatform(p: Platform): string {
  return [p.os, p.architecture, p.variant].filter(Boolean).join('/');
}

/** Parses `os/arch[/variant]`, e.g. `linux/arm64/v8`. */
export function parsePlatform(s: string): Platform {
  const parts = s.split('/');
  if (parts.length < 2 || parts.length > 3 || parts.some((x) => x === '')) {
    throw new UsageError(`platform "${s}" is not os/arch[/variant]`, 'for example linux/amd64 or linux/arm64/v8');
  }
  const [os, architecture, variant] = parts as [string, string, string | undefined];
  return variant === undefined ? { os, architecture } : { os, architecture, variant };
}

export function hostPlatform(): Platform {
  const arch = { x64: 'amd64', arm64: 'arm64', arm: 'arm', ia32: '386', ppc64: 'ppc64le', s390x: 's390x', riscv64: 'riscv64' }[
    process.arch as string
  ];
  return normalizePlatform({ os: process.platform, architecture: arch ?? process.arch });
}
