-- A busted output handler: one line per test while running, the details of every
-- failure and skip at the end, and as the very last line "N passed, N failed"
-- (errors count as failures), which is what CI reads.
return function(options)
  local busted = require("busted")
  local handler = require("busted.outputHandlers.base")()
  local write = io.write

  local function describe_failure(t, kind)
    local msg = t.message
    if type(msg) ~= "string" then msg = tostring(msg) end
    local where = t.element and t.element.trace and
      (t.element.trace.short_src .. ":" .. tostring(t.element.trace.currentline)) or "?"
    return string.format("%s: %s\n  at %s\n  %s", kind, handler.getFullName(t.element or {}) or t.name,
      where, (msg or "nil"):gsub("\n", "\n  "))
  end

  handler.testEnd = function(element, _, status)
    local name = handler.getFullName(element)
    if status == "success" then
      write("ok      ", name, "\n")
    elseif status == "pending" then
      write("skip    ", name, "\n")
    else
      write("FAILED  ", name, "\n")
    end
    io.flush()
    return nil, true
  end

  handler.suiteEnd = function()
    local failed = #handler.failures + #handler.errors
    for _, t in ipairs(handler.pendings) do
      write("\nskipped: ", handler.getFullName(t.element), ": ", tostring(t.message or ""), "\n")
    end
    for _, t in ipairs(handler.failures) do write("\n", describe_failure(t, "FAILURE"), "\n") end
    for _, t in ipairs(handler.errors) do write("\n", describe_failure(t, "ERROR"), "\n") end
    write(string.format("\n%d skipped\n", #handler.pendings))
    write(string.format("%d passed, %d failed\n", #handler.successes, failed))
    io.flush()
    return nil, true
  end

  busted.subscribe({ "test", "end" }, handler.testEnd, { predicate = handler.cancelOnPending })
  busted.subscribe({ "suite", "end" }, handler.suiteEnd)
  return handler
end
