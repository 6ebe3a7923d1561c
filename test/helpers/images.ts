/** Helpers for tests on 28x28 images. */

/** The centre of mass (column, row) of a 28x28 image, in pixel index coordinates. */
export function centreOfMass(p: ArrayLike<number>): [number, number] {
  let s = 0, sx = 0, sy = 0;
  for (let i = 0; i < 784; i++) (s += p[i]), (sx += p[i] * (i % 28)), (sy += p[i] * Math.floor(i / 28));
  return [sx / s, sy / s];
}
