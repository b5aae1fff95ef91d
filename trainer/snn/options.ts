// Options of the spiking networks, with defaults resolved once and validated.
import { invalidArgument } from '../../common/errors.js';

export type SurrogateKind = 'sigmoid' | 'atan';
type InputEncoding = 'direct' | 'poisson';
type ScoreLayers = 'final' | 'all';

interface NeuronOptions {
  /**
   * Membrane decay lambda in u[t] = lambda u[t-1] + I[t] (paper Eq. 1). Default
   * 0.5 (tau = 2, SpikingJelly's default). Table I lists 0.1-0.2 for its
   * datasets; on Fashion-MNIST with T = 4 both train alike (trainer/snn/README.md).
   */
  decay?: number;
  /** Firing threshold theta (Eq. 2). Default 1.0 (Table I). */
  threshold?: number;
  /** Surrogate gradient of the Heaviside step. Default `sigmoid`. */
  surrogate?: SurrogateKind;
  /** Surrogate sharpness alpha. Default 4 for sigmoid, 2 for atan (SpikingJelly's defaults). */
  alpha?: number;
  /**
   * Detach the soft reset u -= theta o[t] from the graph (no gradient through
   * the reset), the common practice: the reset path's surrogate term mostly
   * adds noise. Default true.
   */
  detachReset?: boolean;
}

export interface NetworkOptions extends NeuronOptions {
  /** Time steps T the input is presented for. Default 4 (Table I). */
  timeSteps?: number;
  /**
   * `direct` (default): the pixel intensity in [0, 1] is the input current of
   * the first layer at every step (the first layer is computed once). `poisson`:
   * at each step a pixel spikes with probability equal to its intensity.
   */
  encoding?: InputEncoding;
  /**
   * Layers whose spike-aware scores are summed into `scores`: `final` (the
   * paper's default, the output layer) or `all` weight layers (Eq. 38).
   * Default `final`.
   */
  scoreLayers?: ScoreLayers;
  /** Seed of weight initialisation and Poisson encoding. Default 1. */
  seed?: number;
  /** Classes (output units). Default 10. */
  classes?: number;
}

export interface SpikingMlpOptions extends NetworkOptions {
  /** Input features. Default 784 (28 x 28 x 1). */
  inputSize?: number;
  /** Widths of the hidden LIF layers. Default [256]. */
  hidden?: number[];
}

export interface SpikingCnnOptions extends NetworkOptions {
  /** Input [height, width, channels]. Default [28, 28, 1]. */
  inputShape?: [number, number, number];
  /** Output channels of the 3x3 conv + LIF + 2x2 max-pool stages. Default [16, 32]. */
  channels?: number[];
}

export interface ResolvedNeuron {
  decay: number;
  threshold: number;
  surrogate: SurrogateKind;
  alpha: number;
  detachReset: boolean;
}

export interface ResolvedNetwork extends ResolvedNeuron {
  timeSteps: number;
  encoding: InputEncoding;
  scoreLayers: ScoreLayers;
  seed: number;
  classes: number;
}

/** Every default of NetworkOptions (documented on each option), stated once; `mlpHidden` is the MLP's hidden widths. */
export const NETWORK_DEFAULTS = {
  decay: 0.5,
  threshold: 1.0,
  surrogate: 'sigmoid',
  detachReset: true,
  timeSteps: 4,
  encoding: 'direct',
  scoreLayers: 'final',
  seed: 1,
  classes: 10,
  mlpHidden: [256],
} as const;

export function resolveNetworkOptions(o: NetworkOptions): ResolvedNetwork {
  const d = NETWORK_DEFAULTS;
  const surrogate = o.surrogate ?? d.surrogate;
  if (surrogate !== 'sigmoid' && surrogate !== 'atan') {
    throw invalidArgument(
      'SADP_SNN_BAD_OPTION',
      `surrogate must be sigmoid or atan, got ${String(surrogate)}`,
    );
  }
  const r: ResolvedNetwork = {
    decay: o.decay ?? d.decay,
    threshold: o.threshold ?? d.threshold,
    surrogate,
    // The surrogate's steepness: each surrogate has its own usual default.
    alpha: o.alpha ?? (surrogate === 'sigmoid' ? 4 : 2),
    detachReset: o.detachReset ?? d.detachReset,
    timeSteps: o.timeSteps ?? d.timeSteps,
    encoding: o.encoding ?? d.encoding,
    scoreLayers: o.scoreLayers ?? d.scoreLayers,
    seed: o.seed ?? d.seed,
    classes: o.classes ?? d.classes,
  };
  check(r.decay >= 0 && r.decay <= 1, `decay must be in [0, 1], got ${r.decay}`);
  check(r.threshold > 0, `threshold must be > 0, got ${r.threshold}`);
  check(r.alpha > 0, `alpha must be > 0, got ${r.alpha}`);
  check(isCount(r.timeSteps), `timeSteps must be a positive integer, got ${r.timeSteps}`);
  check(isCount(r.classes) && r.classes >= 2, `classes must be an integer >= 2, got ${r.classes}`);
  check(Number.isInteger(r.seed), `seed must be an integer, got ${r.seed}`);
  check(r.encoding === 'direct' || r.encoding === 'poisson', `encoding must be direct or poisson`);
  check(r.scoreLayers === 'final' || r.scoreLayers === 'all', `scoreLayers must be final or all`);
  return r;
}

export function isCount(n: number): boolean {
  return Number.isInteger(n) && n > 0;
}

export function check(ok: boolean, message: string): asserts ok {
  if (!ok) throw invalidArgument('SADP_SNN_BAD_OPTION', message);
}
