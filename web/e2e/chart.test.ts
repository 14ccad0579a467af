// The console charts' y axis, without a browser (yAxis is plain
// arithmetic): run with the end-to-end suite by node's test runner.

import assert from "node:assert/strict";
import { test } from "node:test";
import { yAxis } from "../src/console/chart.js";

const labels = (max: number) => yAxis(max).ticks.map((t) => t.label);

test("the y axis steps by 1, 2, 2.5 or 5 × 10^k, with exact labels", () => {
  assert.deepEqual(labels(0), ["0", "0.25", "0.5", "0.75", "1"]);
  assert.deepEqual(labels(0.3), ["0", "0.25", "0.5", "0.75", "1"]);
  assert.deepEqual(labels(1), ["0", "0.25", "0.5", "0.75", "1"]);
  assert.deepEqual(labels(1.2), ["0", "0.5", "1", "1.5"]);
  assert.deepEqual(labels(3), ["0", "1", "2", "3"]);
  assert.deepEqual(labels(7), ["0", "2", "4", "6", "8"]);
  assert.deepEqual(labels(9.5), ["0", "2.5", "5", "7.5", "10"]);
  assert.deepEqual(labels(10), ["0", "2.5", "5", "7.5", "10"]);
  assert.deepEqual(labels(130), ["0", "50", "100", "150"]);
  assert.deepEqual(labels(12345), ["0", "5000", "10000", "15000"]);
  assert.equal(yAxis(130).top, 150);
});

test("any range gets at most four intervals of one nice step, the top at or above it", () => {
  for (let i = 0; i < 2000; i++) {
    const max = Math.random() * 10 ** (Math.random() * 8 - 2);
    const { top, ticks } = yAxis(max);
    const vs = ticks.map((t) => Number(t.label));
    assert.ok(ticks.length >= 2 && ticks.length <= 5, `${max}: ${ticks.length} ticks`);
    assert.equal(vs[0], 0);
    assert.equal(top, vs.at(-1));
    assert.ok(top >= max && top >= 1, `${max}: top ${top}`);
    const step = vs[1]! - vs[0]!;
    const mantissa = step / 10 ** Math.floor(Math.log10(step));
    assert.ok([1, 2, 2.5, 5].some((m) => Math.abs(m - mantissa) < 1e-9), `${max}: step ${step}`);
    ticks.forEach((t, j) => {
      assert.equal(t.label, String(t.v));
      assert.ok(Math.abs(t.v - j * step) <= 1e-9 * top, `${max}: tick ${j} is ${t.label}`);
    });
  }
});
