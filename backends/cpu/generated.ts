// Loops the CPU backend writes as source at run time (per op, per form, per set of terms) are
// compiled here, under a name: a profile then says which loop it is, not "anonymous".

/** `function name(params) { body }`, compiled; T is its signature. */
export function generatedFunction<T>(name: string, params: readonly string[], body: string): T {
  return new Function(`return function ${name}(${params.join(', ')}) {\n${body}\n}`)() as T;
}
