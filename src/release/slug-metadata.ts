/** A release's slug metadata (process types, buildpacks, size), read from its verified slug manifest. */
import { imageStorePath } from '../home.js';
import type { Digest } from '../oci/digest.js';
import { verifySlugManifest, type SlugMetadata } from '../slug/slug.js';
import { OciLayout } from '../store/layout.js';
import type { BuiltRelease } from './releases.js';

export async function slugMetadataOf(home: string, rel: BuiltRelease): Promise<SlugMetadata> {
  const layout = await OciLayout.open(imageStorePath(home), { create: false });
  return verifySlugManifest(layout, rel.slug as Digest, `${rel.app} v${rel.version}`);
}
