export { loadDataset, datasetNames, type Dataset, type LoadDatasetOptions } from './datasets.js';
export { readWav, mfcc, mfccSummary, mfccSummaryDim, hzToMel, melToHz, type WavAudio, type MfccOptions, type MfccFrames } from './audio.js';
export { coldStartExperiment, summarise, type ColdStartArm, type ColdStartOptions, type ColdStartResult } from './coldstart.js';
export { ridgeProbeAccuracy, classCoverage, type ProbeData, type ProbeOptions } from './probe.js';
