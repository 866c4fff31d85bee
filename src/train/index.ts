// Downstream classifiers: late fusion and MLA (spec/methods.md §4, §6).
export type {
  Classifier,
  ClassifierModel,
  EpochRecord as ClassifierEpochRecord,
  ForwardOptions,
  ForwardResult,
  ModalityPrediction,
  OutputLayer,
  Prediction,
} from './types.js';
export { trainClassifier, initClassifier, loadClassifier, TRAIN_DEFAULTS, type TrainClassifierOptions, type TrainProgress } from './trainer.js';
export type { ClassifierForwardOptions } from './model.js';
