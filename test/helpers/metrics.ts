// Reading the process's Prometheus registry in tests.
import { registry } from '../../common/metrics.js';

/** The sum of metric `name`'s series whose labels include `labels` (0 when it is not registered). */
export async function metricValue(name: string, labels: Record<string, string> = {}): Promise<number> {
  const metric = registry.getSingleMetric(name);
  if (!metric) return 0;
  const { values } = await metric.get();
  return values
    .filter((v) => Object.entries(labels).every(([k, l]) => v.labels[k] === l))
    .reduce((sum, v) => sum + v.value, 0);
}
