"""The no-code web studio (Gradio). It writes configs, launches the engine as a subprocess and reads run folders."""
