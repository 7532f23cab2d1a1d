/** `apps destroy`: the app's dynos stopped, then everything it had on this host removed. */
import { existsSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { checkAppName, deleteApp, getApp, type DestroyedApp } from '../release/apps.js';
import type { Db } from '../store/db.js';
import { controlSocket, isUp, stopApp } from './control.js';
import { logFiles } from './logs.js';
import { reapOrphanDynos } from './orphans.js';

export async function destroyApp(home: string, db: Db, app: string): Promise<DestroyedApp & { stopped: boolean }> {
  const workspace = join(home, 'builds', checkAppName(app));
  if (!db.prepare('SELECT 1 FROM apps WHERE name = ?').get(app) && existsSync(workspace)) {
    // A failed first build leaves no app, only its build workspace (the log its error names, a cache).
    await rm(workspace, { recursive: true, force: true });
    return { app, releases: 0, slugsReleased: [], stopped: false };
  }
  getApp(db, app);
  const stopped = await isUp(home, app);
  if (stopped) await stopApp(home, app);
  await reapOrphanDynos(home, app);
  const { current, previous } = logFiles(home, app);
  for (const f of [current, previous, join(home, 'logs', `${app}.supervisor.log`), controlSocket(home, app)]) await rm(f, { force: true });
  return { ...(await deleteApp(home, db, app)), stopped };
}
