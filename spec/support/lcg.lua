-- A small deterministic generator for the specs' data (an LCG: the same numbers on
-- every platform, and independent of math.random's state, which belongs to the code
-- under test). lcg(seed) -> a function returning the next number in [0, 1).
return function(seed)
  local s = seed
  return function()
    s = (s * 1103515245 + 12345) % 2147483648
    return s / 2147483648
  end
end
