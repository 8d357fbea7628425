/** Reconciliation: make a switch hold exactly the desired state, changing only the difference. */
export { diffState, diffMessages, flowIdentity, matchKey, isEmpty, summarize, type ActualState, type DesiredState, type Diff, type DiffOptions } from './diff.js';
export { SwitchReconciler, type ReconcileResult, type SwitchReconcilerOptions } from './switch.js';
