/** The committed document and its generated types, from the server's document text. */
export function render(documentText: string): Promise<{ json: string; typescript: string }>;
