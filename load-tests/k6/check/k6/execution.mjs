// Stand-in for `k6/execution`: one VU, the scenario run-one.mjs is running.
import { state } from '../state.mjs';

export default {
  get scenario() {
    return { name: state.scenario || 'default', executor: 'stand-in', startTime: 0, progress: 0, iterationInInstance: 0, iterationInTest: 0 };
  },
  get vu() {
    return { idInInstance: 1, idInTest: 1, iterationInInstance: 0, iterationInScenario: 0, tags: {}, metrics: { tags: {} } };
  },
  get instance() {
    return { iterationsCompleted: 0, iterationsInterrupted: 0, vusActive: 1, vusInitialized: 1, currentTestRunDuration: 0 };
  },
  test: { abort(reason) { throw new Error(`test aborted: ${reason}`); }, options: {} },
};
