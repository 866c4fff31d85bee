// The run folder of `evaluate()`: plan.json (what the run computes, compared on --resume),
// cells/<id>.json (one finished cell each) and cells/stage1-s<seed>.json, results.json and
// report.html. Every file is written atomically (temporary name, then rename), so an interrupted
// run leaves only complete files and resumes from them.
import { mkdir, readdir, readFile, rename, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

import { PairpickError } from '../errors.js';

/** What a finished cell holds (results.json lists them without `seconds`, which go under `times`). */
export interface CellResult {
  id: string;
  arm: string;
  kind: 'cold' | 'warm';
  strategy: string;
  seed: number;
  round: number;
  budget: number;
  /** The labelled set: dataset row indices, in pick order (a warm arm's earlier rounds first). */
  picks: number[];
  /** Top-1 accuracy and macro-F1 of the model on the test split. */
  accuracy: number;
  macroF1: number;
  /** Recall of each class on the test split. */
  recall: number[];
  /** Classes with at least one pick, and picks per class. */
  covered: number;
  histogram: number[];
  /** Modality gap and mean alignment of the picks in the embedding the selection ran on (null
   * when there is none shared by the modalities: no stage 1 and different dims). */
  gap: number | null;
  alignment: number | null;
  /** Test accuracy of each modality alone, by modality name. */
  perModality: Record<string, number>;
  /** Selection (this round's picks) and training wall time. */
  seconds: { selection: number; training: number };
  /** MMCSAL cells: the space the selection ran on (Selection.params.space), e.g. 'embedding+inputs'. */
  space?: string;
}

export interface Stage1Result {
  seed: number;
  gapBefore: number;
  gap: number;
  seconds: number;
}

/** Writes text to `path` atomically (a temporary file in the same folder, then a rename). */
export async function writeAtomic(path: string, text: string): Promise<void> {
  const tmp = `${path}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`;
  try {
    await writeFile(tmp, text);
    await rename(tmp, path);
  } catch (e) {
    await unlink(tmp).catch(() => {});
    throw new PairpickError('E_IO', `cannot write ${path}: ${(e as Error).message}`, { cause: e });
  }
}

/** The run folder. */
export class RunFolder {
  readonly cellsDir: string;
  constructor(readonly dir: string) {
    this.cellsDir = join(dir, 'cells');
  }

  /**
   * Creates the folder, or checks the one there: a folder holding another run is refused without
   * `resume`, and with `resume` its plan must equal `plan` (E_OPTION naming the first difference).
   */
  async open(plan: Record<string, unknown>, resume: boolean): Promise<void> {
    try {
      await mkdir(this.cellsDir, { recursive: true });
    } catch (e) {
      throw new PairpickError('E_IO', `evaluate: cannot create the run folder ${this.dir}: ${(e as Error).message}`, { cause: e });
    }
    const planPath = join(this.dir, 'plan.json');
    const previous = await readJson(planPath);
    const listing = await readdir(this.cellsDir);
    // Leftovers of a run killed while writing a cell (never renamed into place).
    await Promise.all(listing.filter((f) => f.endsWith('.tmp')).map((f) => unlink(join(this.cellsDir, f)).catch(() => {})));
    const finished = listing.filter((f) => f.endsWith('.json'));
    if (previous === undefined && finished.length === 0) {
      await writeAtomic(planPath, `${JSON.stringify(plan, null, 1)}\n`);
      return;
    }
    if (!resume) {
      throw new PairpickError('E_OPTION', `evaluate: ${this.dir} already holds a run (plan.json, cells/): pass option 'resume' to continue it, or choose another folder`);
    }
    if (previous === undefined) throw new PairpickError('E_FORMAT', `evaluate: ${planPath} is missing but ${this.cellsDir} holds cells: cannot tell which run they belong to`);
    const differs = Object.keys({ ...plan, ...(previous as object) }).find((k) => JSON.stringify(plan[k]) !== JSON.stringify((previous as Record<string, unknown>)[k]));
    if (differs !== undefined) {
      throw new PairpickError(
        'E_OPTION',
        `evaluate: cannot resume ${this.dir}: its plan differs in '${differs}' (was ${short((previous as Record<string, unknown>)[differs])}; now ${short(plan[differs])})`,
      );
    }
  }

  /** A finished cell (or stage-1 record), or undefined when it is not there yet. */
  async read<T>(id: string): Promise<T | undefined> {
    return (await readJson(join(this.cellsDir, `${id}.json`))) as T | undefined;
  }

  async write(id: string, value: unknown): Promise<void> {
    await writeAtomic(join(this.cellsDir, `${id}.json`), `${JSON.stringify(value)}\n`);
  }
}

function short(value: unknown): string {
  const s = JSON.stringify(value) ?? 'nothing';
  return s.length > 80 ? `${s.slice(0, 77)}…` : s;
}

/** Parsed JSON of `path`, undefined when there is no such file; E_FORMAT when it is not JSON. */
async function readJson(path: string): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new PairpickError('E_IO', `cannot read ${path}: ${(e as Error).message}`, { cause: e });
  }
  try {
    return JSON.parse(text);
  } catch {
    throw new PairpickError('E_FORMAT', `${path} is not valid JSON (was it edited by hand?): remove it to recompute it`);
  }
}
