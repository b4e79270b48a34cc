// Softmax followed by cross-entropy loss, fused because the gradient of the pair is simply
// softmax - onehot.

/**
 * Computes the cross-entropy loss of softmax(logits) against the labels, summed over the n rows,
 * and writes its gradient when dlogits is not null.
 * logits [n, classes], labels[labelOffset + i] is the class of row i, and
 * dlogits [n, classes] = (softmax(logits) - onehot(label)) * gradientScale.
 * Returns the summed loss and the count of rows whose arg-max (the first maximum on ties) equals
 * the label. Throws a RangeError when a label is missing or not below `classes`.
 */
export function softmaxCrossEntropy(
  n: number,
  classes: number,
  logits: Float32Array,
  labels: Uint8Array,
  labelOffset: number,
  dlogits: Float32Array | null,
  gradientScale: number,
): { lossSum: number; correct: number } {
  if (labelOffset < 0 || labelOffset + n > labels.length) {
    throw new RangeError(
      `softmaxCrossEntropy: labels [${labelOffset}, ${labelOffset + n}) are outside the ` +
        `${labels.length} labels given`,
    );
  }

  let lossSum = 0;
  let correct = 0;
  for (let i = 0; i < n; i++) {
    const row = i * classes;
    const rowEnd = row + classes;
    const label = labels[labelOffset + i];
    if (label >= classes) {
      throw new RangeError(
        `softmaxCrossEntropy: label ${label} of row ${i} is not below the class count ${classes}`,
      );
    }

    let maximum = logits[row];
    let maximumIndex = row;
    for (let c = row + 1; c < rowEnd; c++) {
      if (logits[c] > maximum) {
        maximum = logits[c];
        maximumIndex = c;
      }
    }
    if (maximumIndex - row === label) {
      correct++;
    }

    // Subtracting the maximum only keeps exp from overflowing, and the result is unchanged.
    let sumExp = 0;
    for (let c = row; c < rowEnd; c++) {
      sumExp += Math.exp(logits[c] - maximum);
    }
    const logSumExp = maximum + Math.log(sumExp);
    // loss = -log softmax[label] = logSumExp - logit[label]
    lossSum += logSumExp - logits[row + label];

    if (dlogits !== null) {
      const probabilityScale = gradientScale / sumExp;
      for (let c = row; c < rowEnd; c++) {
        dlogits[c] = Math.exp(logits[c] - maximum) * probabilityScale;
      }
      const softmaxOfLabel = Math.exp(logits[row + label] - maximum) / sumExp;
      dlogits[row + label] = (softmaxOfLabel - 1) * gradientScale;
    }
  }

  return { lossSum, correct };
}
