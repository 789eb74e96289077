// Shared test data for the flame graph unit tests (not a test file itself).

/** all(10) → main(10) → [a(6) → [c(4)], b(3)], main self 1; c is also under b. */
export function sample() {
  return {
    name: "all",
    file: "",
    self: 0,
    total: 10,
    children: [
      {
        name: "main",
        file: "/app/train.py",
        self: 1,
        total: 10,
        children: [
          { name: "a", file: "/app/train.py", self: 2, total: 6, children: [{ name: "c", file: "/app/util.py", self: 4, total: 4, children: [] }] },
          { name: "b", file: "/app/train.py", self: 1, total: 3, children: [{ name: "c", file: "/app/util.py", self: 2, total: 2, children: [] }] },
        ],
      },
    ],
  };
}
