use yew::prelude::*;

#[function_component]
fn App() -> Html {
    html! { <h1>{ "Workspace editor" }</h1> }
}

fn main() {
    yew::Renderer::<App>::new().render();
}
