// Selection ops (greedy steps kept on the device, k-means assignment, …). Filled in by the
// selection engine; see spec/methods.md §2–3.

// eslint-disable-next-line @typescript-eslint/no-empty-interface
export interface SelectOps {}
