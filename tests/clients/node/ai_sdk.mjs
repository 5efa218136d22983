// The Vercel AI SDK as its users call it, pointed at the gateway: one scenario a run, its
// result printed as one line of JSON for the test to check (tests/apis/chat/test_ai_sdk.py).
//
//   node ai_sdk.mjs <chat|responses> <generateText|streamText|toolSteps|generateObject>
//
// GATEWAY_BASE_URL, GATEWAY_API_KEY and GATEWAY_MODEL say where, with what key and which model.
// "chat" is `openai.chat(model)` (chat completions); "responses" is `openai(model)`, the
// provider's default, which speaks the Responses API.
import { createOpenAI } from '@ai-sdk/openai';
import { generateObject, generateText, stepCountIs, streamText, tool } from 'ai';
import { z } from 'zod';

const [kind, scenario] = process.argv.slice(2);
const openai = createOpenAI({
  baseURL: process.env.GATEWAY_BASE_URL,
  apiKey: process.env.GATEWAY_API_KEY,
});
const MODELS = { chat: (id) => openai.chat(id), responses: (id) => openai(id) };
const model = MODELS[kind](process.env.GATEWAY_MODEL);
const settings = { model, maxRetries: 0 }; // a retry would hide what the gateway answered

const weather = tool({
  description: 'The weather in a city',
  inputSchema: z.object({ location: z.string() }),
  execute: async ({ location }) => `18C and sunny in ${location}`,
});

const SCENARIOS = {
  async generateText() {
    const { text, finishReason, usage, response } = await generateText({ ...settings, prompt: 'Hello, gateway' });
    return { text, finishReason, usage, modelId: response.modelId };
  },

  async streamText() {
    let failure;
    const result = streamText({
      ...settings,
      prompt: 'one two three',
      onError: ({ error }) => { failure = error; },
    });
    const deltas = [];
    for await (const delta of result.textStream) deltas.push(delta);
    if (failure) throw failure;
    return {
      deltas,
      text: await result.text,
      finishReason: await result.finishReason,
      usage: await result.usage,
      modelId: (await result.response).modelId,
    };
  },

  async toolSteps() {
    const { text, steps, totalUsage } = await generateText({
      ...settings,
      prompt: 'Weather in Paris?',
      tools: { weather },
      stopWhen: stepCountIs(2),
    });
    return {
      text,
      totalUsage,
      steps: steps.map((step) => ({
        finishReason: step.finishReason,
        toolCalls: step.toolCalls.map(({ toolName, input }) => ({ toolName, input })),
        toolResults: step.toolResults.map(({ toolName, output }) => ({ toolName, output })),
        text: step.text,
      })),
    };
  },

  async generateObject() {
    const { object, finishReason } = await generateObject({
      ...settings,
      schema: z.object({ city: z.string(), celsius: z.number() }),
      schemaName: 'weather',
      prompt: 'The weather in Paris, as JSON',
    });
    return { object, finishReason };
  },
};

process.stdout.write(JSON.stringify(await SCENARIOS[scenario]()) + '\n');
