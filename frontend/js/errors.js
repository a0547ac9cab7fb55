// Validation errors from the server, in plain words. The server's `type` decides the sentence;
// its own message and details are kept when the type is not one we know.

const SENTENCES = {
  required_input_missing: (input) => `input "${input}" is required but nothing is connected or set`,
  bad_linked_input: (input) => `input "${input}" is connected to an output of the wrong type`,
  return_type_mismatch: (input) => `input "${input}" is connected to an output of the wrong type`,
  invalid_input_type: (input) => `input "${input}" has a value of the wrong type`,
  value_smaller_than_min: (input) => `input "${input}" is below its minimum`,
  value_bigger_than_max: (input) => `input "${input}" is above its maximum`,
  value_not_in_list: (input) => `input "${input}" has a value that is not one of its choices`,
  custom_validation_failed: (input) => `input "${input}" was rejected by the node`,
  exception_during_inner_validation: (input) => `input "${input}" depends on a node that failed validation`,
  exception_during_validation: () => "the node failed while being validated",
  dependency_cycle_detected: () => "it is part of a loop: a node cannot depend on itself",
};

export function describeNodeError(err) {
  const input = err.extra_info?.input_name;
  const sentence = SENTENCES[err.type]?.(input ?? "?");
  const details = err.details && err.details !== input ? ` (${err.details})` : "";
  if (sentence && (input || !SENTENCES[err.type].length)) return `${sentence}${details}`;
  return `${err.message ?? err.type ?? "invalid"}${details}`;
}

/** {type: "pack title"} from the server's {type: [{name, title, url}]} providers. */
export function providerNames(providers) {
  const out = {};
  for (const [type, list] of Object.entries(providers ?? {})) {
    if (Array.isArray(list) && list.length) out[type] = list.map((p) => p.title || p.name).join(" or ");
  }
  return out;
}

/** {type: [{title, url}]}: where each known provider of a type can be installed from. */
export function providerLinks(providers) {
  const out = {};
  for (const [type, list] of Object.entries(providers ?? {})) {
    const links = (Array.isArray(list) ? list : []).filter((p) => typeof p?.url === "string" && p.url)
      .map((p) => ({ title: p.title || p.name || p.url, url: p.url }));
    if (links.length) out[type] = links;
  }
  return out;
}
