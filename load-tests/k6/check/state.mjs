// What the stand-in k6 modules share with run-one.mjs: the requests made, the
// checks run, the metrics declared, the scenario being run and the options
// that change a fake response. One script runs per process, so one state.
export const state = {
  requests: [],
  checks: [],
  metrics: new Map(),
  scenario: null,
  discardResponseBodies: false,
  baseOrigin: null,
};
